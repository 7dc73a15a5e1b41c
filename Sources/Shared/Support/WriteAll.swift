import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Writes every byte to a file descriptor, retrying short writes and EINTR: what the
/// bundle writer, the artifact store, downloads and key files each need.
public enum WriteAll {
  /// Why the write stopped: the errno, and how many bytes had gone out before it.
  public struct Failure: Error, Sendable {
    public var code: Int32
    public var written: Int
    public var reason: String { String(cString: strerror(code)) }
  }

  public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Failure) {
    var written = 0
    while written < bytes.count {
      let count = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
      if count < 0 {
        if errno == EINTR { continue }
        throw Failure(code: errno, written: written)
      }
      written += count
    }
  }

  public static func write(_ fd: Int32, _ bytes: some ContiguousBytes) throws(Failure) {
    let result: Result<Void, Failure> = bytes.withUnsafeBytes { raw in
      do throws(Failure) {
        try write(fd, raw)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try result.get()
  }
}
