// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
  name: "pinpool",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "pinpool", targets: ["pinpool"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
  ],
  targets: [
    .systemLibrary(
      name: "CZeroMQ",
      providers: [.apt(["libzmq3-dev"])]
    ),
    .target(
      name: "Shared",
      dependencies: [
        "CZeroMQ",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "Coordinator",
      dependencies: [
        "Shared",
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // libc headers Glibc's module leaves out (extended attributes).
    .systemLibrary(name: "CSandbox"),
    .target(
      name: "Worker",
      dependencies: [
        "Shared",
        "CSandbox",
        .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "pinpool",
      dependencies: [
        "Shared", "Coordinator", "Worker",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .testTarget(name: "SharedTests", dependencies: ["Shared"], swiftSettings: strict),
    .testTarget(
      name: "CoordinatorTests",
      dependencies: [
        "Coordinator", "Shared", .product(name: "GRDB", package: "GRDB.swift"),
        // SQLite's own counters (a statement's re-preparations) for the store's tests.
        .product(name: "GRDBSQLite", package: "GRDB.swift"),
      ],
      swiftSettings: strict),
    .testTarget(name: "WorkerTests", dependencies: ["Worker", "Shared"], swiftSettings: strict),
    // The CLI's renderers and argument checks, through `@testable import pinpool`.
    .testTarget(
      name: "CLITests", dependencies: ["pinpool", "Shared"], exclude: ["Golden"], swiftSettings: strict),
    .testTarget(
      name: "IntegrationTests",
      // Depends on the executable so `swift test` builds the binary it drives.
      dependencies: ["Shared", "CZeroMQ", "pinpool"],
      swiftSettings: strict
    ),
    .executableTarget(name: "pinpool-bench", dependencies: ["Shared", "CZeroMQ"], swiftSettings: strict),
  ]
)
