import CZeroMQ
import Foundation

/// A bare libzmq socket for the benchmark. `Shared.ZMQSocket` keeps its handle to the
/// module, and a simulator polling 1,000 sockets in one `zmq_poll` needs the handles,
/// so the benchmark owns its context and sockets. One thread uses them all.
final class RawSocket {
  let handle: UnsafeMutableRawPointer

  init(context: UnsafeMutableRawPointer, type: Int32) throws(BenchError) {
    guard let handle = zmq_socket(context, type) else { throw .zmq("zmq_socket") }
    self.handle = handle
    setOption(ZMQ_LINGER, 0)
  }

  func setOption(_ option: Int32, _ value: Int32) {
    var v = value
    _ = zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size)
  }

  func connect(_ endpoint: String) throws(BenchError) {
    guard zmq_connect(handle, endpoint) == 0 else { throw .zmq("connect \(endpoint)") }
  }

  /// Sends one multipart message without blocking; false when the socket cannot take it.
  @discardableResult
  func send(_ frames: [Data]) -> Bool {
    for (index, frame) in frames.enumerated() {
      var flags = ZMQ_DONTWAIT
      if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
      while true {
        let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
        if rc >= 0 { break }
        if zmq_errno() == EINTR { continue }
        return false
      }
    }
    return true
  }

  /// One whole multipart message, or nil when none is waiting.
  func receive() -> [Data]? {
    var frames: [Data] = []
    while true {
      var message = zmq_msg_t()
      zmq_msg_init(&message)
      let rc = zmq_msg_recv(&message, handle, frames.isEmpty ? ZMQ_DONTWAIT : 0)
      if rc < 0 {
        let code = zmq_errno()
        zmq_msg_close(&message)
        if code == EINTR { continue }
        return nil
      }
      let size = zmq_msg_size(&message)
      frames.append(size == 0 ? Data() : Data(bytes: zmq_msg_data(&message), count: size))
      let more = zmq_msg_more(&message) != 0
      zmq_msg_close(&message)
      if !more { return frames }
    }
  }

  func close() { zmq_close(handle) }
}

enum BenchError: Error, CustomStringConvertible {
  case zmq(String)
  case usage(String)
  case timeout(String)
  case refused(String)

  var description: String {
    switch self {
    case .zmq(let what): "\(what) failed: \(String(cString: zmq_strerror(zmq_errno())))"
    case .usage(let text): text
    case .timeout(let what): "timed out: \(what)"
    case .refused(let text): "the coordinator refused: \(text)"
    }
  }
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// `VmRSS` and `VmHWM` of a process, in bytes, from /proc/PID/status.
func memoryOf(pid: Int32) -> (rss: Int64, peak: Int64)? {
  guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
  func field(_ name: String) -> Int64? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
      let parts = line.split(separator: " ", omittingEmptySubsequences: true)
      if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
    }
    return nil
  }
  guard let rss = field("VmRSS"), let peak = field("VmHWM") else { return nil }
  return (rss, peak)
}

extension RawSocket {
  /// The descriptor libzmq signals when the socket's state changed; see `EventLoop`.
  var signalFD: Int32 {
    var fd: Int32 = -1
    var size = MemoryLayout<Int32>.size
    _ = zmq_getsockopt(handle, ZMQ_FD, &fd, &size)
    return fd
  }
}

/// Waits on many sockets at once with one poll(2) over their `ZMQ_FD`s: one system
/// call, where one `zmq_poll` over 1,000 sockets also queries every socket's state on
/// each call. `ZMQ_FD` only says "look at this socket", and a send may take the signal
/// for messages already queued, so callers drain a socket after each wake and after
/// each send to it, and sweep all sockets now and then.
final class EventLoop {
  private var fds: [pollfd]

  init(sockets: [RawSocket]) {
    fds = sockets.map { pollfd(fd: $0.signalFD, events: Int16(POLLIN), revents: 0) }
  }

  /// Indices of sockets that may have something, after waiting up to `timeoutMs`.
  func wait(_ timeoutMs: Int) -> [Int] {
    let count = poll(&fds, nfds_t(fds.count), Int32(timeoutMs))
    guard count > 0 else { return [] }
    return fds.indices.filter { fds[$0].revents != 0 }
  }
}
