import Foundation

/// The files a job ships to its worker: one script, or a whole app folder. Kept as one
/// blob so the coordinator stores it once and an array of 1,000 jobs shares it.
public struct JobBundle: Sendable, Hashable {
  public struct File: Sendable, Hashable {
    public var path: String
    public var mode: UInt16
    public var data: Data

    public init(path: String, mode: UInt16, data: Data) {
      self.path = path
      self.mode = mode
      self.data = data
    }
  }

  public var files: [File]

  public init(files: [File]) { self.files = files }

  public var totalBytes: Int { files.reduce(0) { $0 + $1.data.count } }

  public func file(_ path: String) -> File? { files.first { $0.path == path } }

  /// Layout: magic "PPB1", count u32, then per file: path length u32, path UTF-8,
  /// mode u16, size u64, bytes. Little-endian. Simple enough to check completely.
  public func encoded() -> Data {
    var out = Data("PPB1".utf8)
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    u32(UInt32(files.count))
    for file in files {
      let path = Data(file.path.utf8)
      u32(UInt32(path.count))
      out.append(path)
      u16(file.mode)
      u64(UInt64(file.data.count))
      out.append(file.data)
    }
    return out
  }

  public init(decoding data: Data) throws(BundleError) {
    let bytes = [UInt8](data)
    var offset = 0
    func take(_ n: Int) throws(BundleError) -> ArraySlice<UInt8> {
      guard n >= 0, offset + n <= bytes.count else {
        throw BundleError.corrupt("truncated at byte \(offset)")
      }
      defer { offset += n }
      return bytes[offset..<offset + n]
    }
    func int(_ n: Int) throws(BundleError) -> UInt64 {
      var v: UInt64 = 0
      for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
      return v
    }
    guard try take(4).elementsEqual("PPB1".utf8) else { throw .corrupt("not a bundle (bad magic)") }
    let count = try int(4)
    guard count <= 100_000 else { throw .corrupt("\(count) files is more than a bundle may hold") }
    var files: [File] = []
    for _ in 0..<count {
      let pathLength = try int(4)
      guard pathLength <= 4096 else { throw .corrupt("a path of \(pathLength) bytes") }
      guard let path = String(bytes: try take(Int(pathLength)), encoding: .utf8) else {
        throw .corrupt("a path that is not UTF-8")
      }
      let mode = UInt16(try int(2))
      let size = try int(8)
      guard size <= UInt64(bytes.count) else { throw .corrupt("file '\(path)' claims \(size) bytes") }
      let body = try take(Int(size))
      try Self.checkPath(path)
      files.append(File(path: path, mode: mode, data: Data(body)))
    }
    guard offset == bytes.count else { throw .corrupt("\(bytes.count - offset) trailing bytes") }
    self.files = files
  }

  /// A bundle path is relative, without `..`, so unpacking can never leave the workspace.
  public static func checkPath(_ path: String) throws(BundleError) {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false)
    guard !path.isEmpty, !path.hasPrefix("/"), !parts.contains(".."), !parts.contains(""),
      !path.contains("\0")
    else { throw .badPath(path) }
  }
}

public enum BundleError: Error, CustomStringConvertible, Sendable {
  case corrupt(String)
  case badPath(String)
  case tooLarge(path: String, bytes: Int, limit: Int)
  case unreadable(path: String, reason: String)
  case noEntry(folder: String)

  public var description: String {
    switch self {
    case .corrupt(let why): "corrupt bundle: \(why)"
    case .badPath(let p): "bundle path '\(p)' must be relative and stay inside the bundle"
    case .tooLarge(let p, let bytes, let limit):
      "bundle '\(p)' is \(ByteSize(bytes: Int64(bytes))), over the limit of \(ByteSize(bytes: Int64(limit)))"
    case .unreadable(let p, let reason): "cannot read '\(p)': \(reason)"
    case .noEntry(let folder):
      "'\(folder)' holds no install.json, install.js or pinokio.json with a \"run\" list; name the script with --entry"
    }
  }
}
