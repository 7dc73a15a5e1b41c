import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Writes every byte to a file descriptor, retrying short writes and EINTR: what the
/// bundle writer, the artifact store, the log files, downloads and key files each need.
public enum WriteAll {
  /// Why the write stopped: the errno, and how many bytes had gone out before it.
  public struct Failure: Error, Sendable {
    public var code: Int32
    public var written: Int
    public var reason: String { String(cString: strerror(code)) }
  }

  /// At the file's position, or at `offset` (pwrite: the position is left alone).
  public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64? = nil)
    throws(Failure)
  {
    var written = 0
    while written < bytes.count {
      let count =
        if let offset {
          pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(offset) + off_t(written))
        } else {
          Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
        }
      if count < 0 {
        if errno == EINTR { continue }
        throw Failure(code: errno, written: written)
      }
      written += count
    }
  }

  public static func write(_ fd: Int32, _ bytes: some ContiguousBytes, at offset: Int64? = nil)
    throws(Failure)
  {
    let result: Result<Void, Failure> = bytes.withUnsafeBytes { raw in
      do throws(Failure) {
        try write(fd, raw, at: offset)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try result.get()
  }

  /// Makes a folder's entries durable (a file just created in it): an fsync of the folder.
  public static func syncDirectory(_ path: String) throws(Failure) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw Failure(code: errno, written: 0) }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw Failure(code: errno, written: 0) }
  }

  /// Up to `count` bytes at `offset` (pread, retrying short reads and EINTR); fewer only
  /// where the file ends.
  public static func read(_ fd: Int32, count: Int, at offset: Int64) throws(Failure) -> Data {
    var data = Data(count: max(0, count))
    var filled = 0
    while filled < data.count {
      let got = data.withUnsafeMutableBytes { raw in
        pread(fd, raw.baseAddress! + filled, raw.count - filled, off_t(offset) + off_t(filled))
      }
      if got < 0 {
        if errno == EINTR { continue }
        throw Failure(code: errno, written: filled)
      }
      if got == 0 { break }
      filled += got
    }
    data.count = filled
    return data
  }
}
