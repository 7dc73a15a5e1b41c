import Crypto
import Foundation

extension Data {
  /// Lowercase hex SHA-256, the form `sha256sum` prints, so people can compare by eye.
  public var sha256Hex: String {
    SHA256.hash(data: self).map { String(format: "%02x", $0) }.joined()
  }
}

/// SHA-256 fed piece by piece, for files too large to hold in memory.
public struct SHA256Stream {
  private var hasher = SHA256()
  public init() {}
  public mutating func update(_ data: Data) { hasher.update(data: data) }
  public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
  /// Lowercase hex, as `sha256sum` prints it.
  public func hex() -> String {
    hasher.finalize().map { String(format: "%02x", $0) }.joined()
  }
}

public struct FileDigestError: Error, Sendable, CustomStringConvertible {
  public let path: String
  public let detail: String
  public var description: String { "cannot read '\(path)': \(detail)" }
}

public enum FileDigest {
  /// The size and SHA-256 of a file, read in 1 MiB pieces. Opens without following a
  /// final symbolic link when `noFollow` is set.
  public static func sha256(path: String, noFollow: Bool = false) throws(FileDigestError) -> (
    size: Int64, sha256: String
  ) {
    let fd = open(path, O_RDONLY | O_CLOEXEC | (noFollow ? O_NOFOLLOW : 0))
    guard fd >= 0 else { throw FileDigestError(path: path, detail: String(cString: strerror(errno))) }
    defer { close(fd) }
    var stream = SHA256Stream()
    var size: Int64 = 0
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    defer { buffer.deallocate() }
    while true {
      let count = read(fd, buffer.baseAddress, buffer.count)
      if count < 0 {
        if errno == EINTR { continue }
        throw FileDigestError(path: path, detail: String(cString: strerror(errno)))
      }
      if count == 0 { break }
      stream.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
      size += Int64(count)
    }
    return (size, stream.hex())
  }
}
