import CZeroMQ

/// One libzmq context per process. It is thread-safe by libzmq's contract; the sockets
/// made from it are not.
public final class ZMQContext: @unchecked Sendable {
  let handle: UnsafeMutableRawPointer

  public init(ioThreads: Int32 = 1) {
    handle = zmq_ctx_new()
    zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
  }

  deinit {
    // Every socket sets a bounded linger, so this cannot hang on unsent messages.
    zmq_ctx_term(handle)
  }
}
