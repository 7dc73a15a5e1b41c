import CZeroMQ
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What a `SocketLoop` calls on its own thread. Implementations are confined to that
/// thread (hence `@unchecked Sendable` on them is sound): they are handed over once,
/// before the thread starts, and only the loop calls them.
public protocol SocketLoopHandler: AnyObject, Sendable {
  /// A batch of whole multipart messages, in arrival order.
  func received(_ messages: [[Data]], io: SocketLoopIO)
  /// Called every `tickInterval` and after each batch, so timers need no thread of their own.
  func tick(io: SocketLoopIO)
  /// Whether `received(_:origins:io:)` needs where each message came from.
  var wantsOrigins: Bool { get }
  /// As `received(_:io:)`, with each message's origin (its key's identity, its address).
  func received(_ messages: [[Data]], origins: [MessageOrigin], io: SocketLoopIO)
}

extension SocketLoopHandler {
  public var wantsOrigins: Bool { false }
  public func received(_ messages: [[Data]], origins: [MessageOrigin], io: SocketLoopIO) {
    received(messages, io: io)
  }
}

/// The loop thread's view of its socket, given to the handler.
public final class SocketLoopIO {
  fileprivate var socket: ZMQSocket
  fileprivate var pending: [[Data]] = []
  fileprivate let makeSocket: () throws -> ZMQSocket
  fileprivate var stopRequested = false

  fileprivate init(makeSocket: @escaping () throws -> ZMQSocket) throws {
    self.makeSocket = makeSocket
    self.socket = try makeSocket()
  }

  /// Sends now if the socket takes it, else keeps it in order for when it can.
  public func send(_ frames: [Data]) {
    if pending.isEmpty, (try? socket.send(frames)) == true { return }
    pending.append(frames)
  }

  /// Replaces the socket with a fresh one (a worker that stopped hearing from the
  /// coordinator reconnects this way). Unsent messages are dropped: the layers above
  /// keep and resend whatever must not be lost.
  public func resetSocket() throws {
    socket.close()
    pending.removeAll()
    socket = try makeSocket()
  }

  public func stop() { stopRequested = true }

  fileprivate func flushPending() {
    while let first = pending.first {
      do {
        guard try socket.send(first) else { return }
      } catch {
        // The peer is unroutable; the message cannot be delivered by retrying.
      }
      pending.removeFirst()
    }
  }
}

/// Owns one ZeroMQ socket and the one thread that may touch it. `zmq_poll` blocks only
/// this thread, never the Swift concurrency pool. Other threads hand messages over
/// through `send`, which queues them and wakes the poll through an eventfd.
public final class SocketLoop: Sendable {
  private struct Shared {
    var outbox: [[Data]] = []
    var stop = false
    var reset = false
  }

  private let state = Mutex(Shared())
  private let wakeFD: Int32
  private let finished = DispatchSemaphore(value: 0)
  public let name: String

  /// - Parameters:
  ///   - makeSocket: creates, configures and binds or connects the socket, on the loop
  ///     thread (a libzmq socket must stay on the thread that uses it).
  ///   - started: signalled on the loop thread once the socket exists, with the error
  ///     when it could not be created, so a caller learns of "address in use" at once.
  public init(
    name: String,
    tickInterval: Duration,
    handler: any SocketLoopHandler,
    makeSocket: @escaping @Sendable () throws -> ZMQSocket
  ) throws {
    self.name = name
    wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    guard wakeFD >= 0 else { throw ZMQError("eventfd", code: errno) }
    let startup = StartupSignal()
    let tickMs =
      Int(tickInterval.components.seconds * 1000)
      + Int(tickInterval.components.attoseconds / 1_000_000_000_000_000)
    let thread = Thread { [self] in
      self.run(handler: handler, tickMs: max(1, tickMs), makeSocket: makeSocket, startup: startup)
    }
    thread.name = name
    thread.start()
    if let error = startup.wait() {
      // The eventfd goes with the loop (`deinit` runs for an initializer that throws).
      finished.wait()
      throw error
    }
  }

  /// Queues a message for the loop to send and wakes it. Safe from any thread.
  public func send(_ frames: [Data]) { send(contentsOf: CollectionOfOne(frames)) }

  /// Queues messages, in order, with one wake-up of the loop at most: a caller with
  /// several to send (a worker's result and cleanup) hands them over together.
  public func send<Messages: Collection<[Data]>>(contentsOf messages: Messages) {
    guard !messages.isEmpty else { return }
    // Woken only when the outbox was empty: the loop takes the whole outbox after a
    // wake-up, so messages that join a waiting one go with it. And woken after the lock
    // is released: a loop woken under it would spin on the lock its waker still holds.
    let wasEmpty = state.withLock { s -> Bool in
      guard !s.stop else { return false }
      let empty = s.outbox.isEmpty
      s.outbox.append(contentsOf: messages)
      return empty
    }
    if wasEmpty { wake() }
  }

  /// Asks the loop to replace its socket with a fresh one (see `SocketLoopIO.resetSocket`).
  public func resetSocket() {
    let asked = state.withLock { s -> Bool in
      guard !s.stop else { return false }
      s.reset = true
      return true
    }
    if asked { wake() }
  }

  /// Stops the loop and waits for its thread to close the socket.
  public func shutdown() {
    let already = state.withLock { s -> Bool in
      defer { s.stop = true }
      return s.stop
    }
    guard !already else { return }
    wake()
    finished.wait()
  }

  // The eventfd lives as long as the loop, so a wake-up racing `shutdown` writes to it
  // harmlessly; the thread holds the loop until it has ended.
  deinit { close(wakeFD) }

  private func wake() {
    var one: UInt64 = 1
    _ = write(wakeFD, &one, 8)
  }

  private func run(
    handler: any SocketLoopHandler, tickMs: Int, makeSocket: @escaping () throws -> ZMQSocket,
    startup: StartupSignal
  ) {
    defer { finished.signal() }
    let io: SocketLoopIO
    do {
      io = try SocketLoopIO(makeSocket: makeSocket)
    } catch {
      startup.signal(error)
      return
    }
    startup.signal(nil)
    defer { io.socket.close() }
    let wantsOrigins = handler.wantsOrigins

    var nextTick = ContinuousClock.now.advanced(by: .milliseconds(tickMs))
    var outgoing: [[Data]] = []
    while true {
      // Swapped out, not copied: the lock is held for two pointer swaps, no allocation.
      let (stop, reset) = state.withLock { s -> (Bool, Bool) in
        swap(&s.outbox, &outgoing)
        defer { s.reset = false }
        return (s.stop, s.reset)
      }
      if reset { try? io.resetSocket() }
      for frames in outgoing where !frames.isEmpty { io.send(frames) }
      outgoing.removeAll(keepingCapacity: true)
      io.flushPending()
      if stop || io.stopRequested { return }

      // Rounded up: a poll woken a fraction of a millisecond before the tick would
      // otherwise be given 0 and spin until the tick (a dozen idle polls every tick).
      let now = ContinuousClock.now
      var timeout = now < nextTick ? Int((nextTick - now).milliseconds.rounded(.up)) : 0
      timeout = max(0, min(timeout, tickMs))
      var items = [
        zmq_pollitem_t(
          socket: io.socket.handle, fd: 0,
          events: Int16(ZMQ_POLLIN | (io.pending.isEmpty ? 0 : ZMQ_POLLOUT)), revents: 0),
        zmq_pollitem_t(socket: nil, fd: wakeFD, events: Int16(ZMQ_POLLIN), revents: 0),
      ]
      let rc = zmq_poll(&items, 2, timeout)
      if rc < 0, zmq_errno() != EINTR { return }
      if items[1].revents != 0 {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
      }
      // The socket may have messages even when poll reported the wake fd only
      // (ZMQ edge cases around ZMQ_FD), so always drain it without blocking.
      var batch: [[Data]] = []
      // Bounded, so one batch (one transaction on the coordinator) stays short and the
      // clock a batch is handled with stays close to when its messages arrived.
      var origins: [MessageOrigin] = []
      var origin = MessageOrigin()
      while batch.count < 256,
        let frames = try? io.socket.receive(dontWait: true, origin: &origin, readOrigin: wantsOrigins)
      {
        batch.append(frames)
        if wantsOrigins {
          origins.append(origin)
          origin = MessageOrigin()
        }
      }
      if !batch.isEmpty {
        if wantsOrigins {
          handler.received(batch, origins: origins, io: io)
        } else {
          handler.received(batch, io: io)
        }
      }
      // Timers only: a handler does its per-batch work in `received`.
      if ContinuousClock.now >= nextTick {
        handler.tick(io: io)
        nextTick = ContinuousClock.now.advanced(by: .milliseconds(tickMs))
      }
    }
  }
}

/// Hands the loop thread's start-up result to the thread that created it.
private final class StartupSignal: @unchecked Sendable {
  private let semaphore = DispatchSemaphore(value: 0)
  private var error: (any Error)?

  func signal(_ error: (any Error)?) {
    self.error = error
    semaphore.signal()
  }

  func wait() -> (any Error)? {
    semaphore.wait()
    return error
  }
}

extension Duration {
  public var milliseconds: Double {
    Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
  }
}
