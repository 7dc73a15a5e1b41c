import CZeroMQ
import Dispatch
import Foundation
import Synchronization
import Testing

@testable import Shared

/// Collects what a loop receives; optionally echoes each message back to its sender.
/// Waiting is bounded: `next` gives up after a timeout instead of hanging the run.
private final class Collector: SocketLoopHandler {
  private let inbox = Mutex<[[Data]]>([])
  private let arrived = DispatchSemaphore(value: 0)
  private let echo: Bool

  init(echo: Bool = false) { self.echo = echo }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    for message in messages {
      if echo { io.send(message) }
      inbox.withLock { $0.append(message) }
      arrived.signal()
    }
  }

  func tick(io: SocketLoopIO) {}

  func next(within seconds: Double = 10) -> [Data]? {
    guard arrived.wait(timeout: .now() + seconds) == .success else { return nil }
    return inbox.withLock { $0.removeFirst() }
  }
}

/// A coordinator stand-in: answers each request with the envelopes `respond` returns.
private final class Responder: SocketLoopHandler {
  private let respond: @Sendable (WireEnvelope) -> [WireEnvelope]

  init(_ respond: @escaping @Sendable (WireEnvelope) -> [WireEnvelope]) { self.respond = respond }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    for frames in messages {
      guard frames.count > 1, let request = try? WireEnvelope(frames: Array(frames.dropFirst())) else {
        continue
      }
      for reply in respond(request) { io.send([frames[0]] + reply.frames) }
    }
  }

  func tick(io: SocketLoopIO) {}
}

private final class EndpointBox: Sendable {
  let value = Mutex<String?>(nil)
}

private func uniqueInproc(_ name: String) -> String { "inproc://\(name)-\(UUID().uuidString)" }

/// An ipc path nobody listens on.
private func nobodyEndpoint() -> String {
  "ipc://\(FileManager.default.temporaryDirectory.path)/pinpool-nobody-\(UUID().uuidString.prefix(8))"
}

private let sampleMessages: [[Data]] = [
  [Data("hello".utf8)],
  [Data(), Data("between empties".utf8), Data()],
  [Data("big".utf8), Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }), Data()],
  [Data(), Data()],
]

@Suite(.serialized, .timeLimit(.minutes(1))) struct ZeroMQTests {
  @Test func socketPairRoundTripsMultipartOverInproc() throws {
    let context = ZMQContext()
    let endpoint = uniqueInproc("pair")
    let a = try ZMQSocket(context: context, kind: .pair)
    let b = try ZMQSocket(context: context, kind: .pair)
    defer {
      a.close()
      b.close()
      withExtendedLifetime(context) {}
    }
    try a.bind(endpoint)
    try b.connect(endpoint)
    try b.setOption(ZMQ_RCVTIMEO, Int32(10_000))
    try a.setOption(ZMQ_RCVTIMEO, Int32(10_000))
    #expect(try b.receive() == nil)  // nothing waiting: nil at once, no block
    for message in sampleMessages {
      #expect(try a.send(message))
      #expect(try b.receive(dontWait: false) == message)
      #expect(try b.send(message))
      #expect(try a.receive(dontWait: false) == message)
    }
  }

  @Test func tcpBindOnAnyPortReportsTheRealEndpoint() throws {
    let context = ZMQContext()
    let server = try ZMQSocket(context: context, kind: .router)
    let client = try ZMQSocket(context: context, kind: .dealer)
    defer {
      client.close()
      server.close()
      withExtendedLifetime(context) {}
    }
    try server.bind("tcp://127.0.0.1:*")
    let endpoint = try #require(server.lastEndpoint)
    #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
    #expect(Int(endpoint.split(separator: ":").last ?? "") ?? 0 > 0)
    try client.connect(endpoint)
    try server.setOption(ZMQ_RCVTIMEO, Int32(10_000))
    try client.setOption(ZMQ_RCVTIMEO, Int32(10_000))
    for message in sampleMessages {
      #expect(try client.send(message, dontWait: false))
      let received = try #require(try server.receive(dontWait: false))
      #expect(Array(received.dropFirst()) == message)
      #expect(try server.send([received[0]] + message, dontWait: false))
      #expect(try client.receive(dontWait: false) == message)
    }
  }

  @Test(arguments: ["inproc", "tcp"])
  func socketLoopsEchoMultipartMessages(transport: String) throws {
    let context = ZMQContext()
    let bound = EndpointBox()
    let address = transport == "inproc" ? uniqueInproc("loop") : "tcp://127.0.0.1:*"
    let server = Collector(echo: true)
    let serverLoop = try SocketLoop(name: "test-server", tickInterval: .milliseconds(50), handler: server) {
      let socket = try ZMQSocket(context: context, kind: .router)
      try socket.bind(address)
      bound.value.withLock { $0 = socket.lastEndpoint }
      return socket
    }
    defer { serverLoop.shutdown() }
    let endpoint = try #require(bound.value.withLock { $0 })
    #expect(!endpoint.hasSuffix("*"))

    let client = Collector()
    let clientLoop = try SocketLoop(name: "test-client", tickInterval: .milliseconds(50), handler: client) {
      let socket = try ZMQSocket(context: context, kind: .dealer)
      try socket.connect(endpoint)
      return socket
    }
    defer { clientLoop.shutdown() }

    for message in sampleMessages { clientLoop.send(message) }
    for message in sampleMessages {
      let atServer = try #require(server.next(), "the server got nothing")
      #expect(atServer.count == message.count + 1)  // the ROUTER adds the sender's identity
      #expect(Array(atServer.dropFirst()) == message)
      let echoed = try #require(client.next(), "the echo never came back")
      #expect(echoed == message)
    }
  }

  @Test func sendsFromOtherThreadsWakeTheLoop() throws {
    let context = ZMQContext()
    let endpoint = uniqueInproc("wake")
    let router = try ZMQSocket(context: context, kind: .router)
    defer {
      router.close()
      withExtendedLifetime(context) {}
    }
    try router.bind(endpoint)
    try router.setOption(ZMQ_RCVTIMEO, Int32(5_000))
    // A tick far in the future: only the wake-up can make the loop send in time.
    let loop = try SocketLoop(name: "test-wake", tickInterval: .seconds(60), handler: Collector()) {
      let socket = try ZMQSocket(context: context, kind: .dealer)
      try socket.connect(endpoint)
      return socket
    }
    defer { loop.shutdown() }

    let start = ContinuousClock.now
    Thread { loop.send([Data("from another thread".utf8)]) }.start()
    let first = try #require(try router.receive(dontWait: false), "the loop did not wake up to send")
    #expect(Array(first.dropFirst()) == [Data("from another thread".utf8)])
    // Well under the loop's 60 s tick: the eventfd woke it, not the timer.
    #expect(ContinuousClock.now - start < .seconds(30))

    // Many senders at once: every message arrives, none twice.
    DispatchQueue.concurrentPerform(iterations: 200) { i in loop.send([Data("\(i)".utf8), Data()]) }
    var seen: Set<String> = []
    for _ in 0..<200 {
      let frames = try #require(try router.receive(dontWait: false), "only \(seen.count) of 200 arrived")
      #expect(frames.count == 3)
      seen.insert(String(decoding: frames[1], as: UTF8.self))
    }
    #expect(seen == Set((0..<200).map(String.init)))

    // Only a send to an empty outbox wakes the loop: after each burst is sent, the first
    // message of the next one must wake it again.
    for burst in 1...20 {
      // Alternately one at a time and as one batch; in order either way.
      let messages = (0..<burst).map { [Data("\(burst).\($0)".utf8)] }
      if burst.isMultiple(of: 2) {
        loop.send(contentsOf: messages)
      } else {
        for message in messages { loop.send(message) }
      }
      loop.send(contentsOf: [[Data]]())
      for i in 0..<burst {
        let frames = try #require(try router.receive(dontWait: false), "burst \(burst) stopped at \(i)")
        #expect(frames.last == Data("\(burst).\(i)".utf8))
      }
    }
  }

  @Test func resetSocketReconnectsAndKeepsWorking() throws {
    let context = ZMQContext()
    let endpoint = uniqueInproc("reset")
    let server = Collector(echo: true)
    let serverLoop = try SocketLoop(
      name: "test-reset-server", tickInterval: .milliseconds(50), handler: server
    ) {
      let socket = try ZMQSocket(context: context, kind: .router)
      try socket.bind(endpoint)
      return socket
    }
    defer { serverLoop.shutdown() }
    let client = Collector()
    let clientLoop = try SocketLoop(
      name: "test-reset-client", tickInterval: .milliseconds(50), handler: client
    ) {
      let socket = try ZMQSocket(context: context, kind: .dealer)
      try socket.connect(endpoint)
      return socket
    }
    defer { clientLoop.shutdown() }

    clientLoop.send([Data("before".utf8)])
    let first = try #require(server.next())
    #expect(try #require(client.next()) == [Data("before".utf8)])
    clientLoop.resetSocket()
    clientLoop.send([Data("after".utf8)])
    let second = try #require(server.next(), "nothing arrived on the fresh socket")
    #expect(Array(second.dropFirst()) == [Data("after".utf8)])
    #expect(second[0] != first[0])  // a new connection, a new route
    #expect(try #require(client.next()) == [Data("after".utf8)])
  }

  @Test func loopShutdownDoesNotHangWithUnsentMessages() {
    let done = DispatchSemaphore(value: 0)
    let endpoint = nobodyEndpoint()
    Thread {
      let context = ZMQContext()
      guard
        let loop = try? SocketLoop(
          name: "test-shutdown", tickInterval: .milliseconds(20), handler: Collector(),
          makeSocket: {
            let socket = try ZMQSocket(context: context, kind: .dealer)
            try socket.connect(endpoint)
            return socket
          })
      else { return }
      for _ in 0..<5_000 { loop.send([Data(count: 1_024)]) }
      loop.shutdown()
      loop.shutdown()  // a second call returns at once
      done.signal()
    }.start()
    #expect(done.wait(timeout: .now() + 10) == .success, "SocketLoop.shutdown hung")
  }

  @Test func contextTerminationDoesNotHangOnUnsentMessages() {
    let done = DispatchSemaphore(value: 0)
    let endpoint = nobodyEndpoint()
    Thread {
      var context: ZMQContext? = ZMQContext()
      if let socket = try? ZMQSocket(context: context!, kind: .dealer) {
        try? socket.connect(endpoint)
        for _ in 0..<100 { _ = try? socket.send([Data(count: 1_024)]) }
        socket.close()
      }
      context = nil  // zmq_ctx_term waits at most the socket's linger
      done.signal()
    }.start()
    #expect(done.wait(timeout: .now() + 10) == .success, "zmq_ctx_term hung on unsent messages")
  }

  @Test func failedBindIsReportedByTheLoopInitialiser() throws {
    let context = ZMQContext()
    let error = #expect(throws: ZMQError.self) {
      _ = try SocketLoop(name: "test-bad", tickInterval: .milliseconds(50), handler: Collector()) {
        let socket = try ZMQSocket(context: context, kind: .router)
        try socket.bind("tcp://256.0.0.1:1")
        return socket
      }
    }
    #expect(error?.operation.hasPrefix("bind") == true)
  }

  @Test(arguments: ["ipc", "tcp"])
  func requestToNobodyIsUnreachableWithinItsTimeout(transport: String) throws {
    let endpoint: String
    if transport == "ipc" {
      endpoint = nobodyEndpoint()
    } else {
      // A port that was just free: bind to any, read it, let it go.
      let context = ZMQContext()
      let socket = try ZMQSocket(context: context, kind: .router)
      try socket.bind("tcp://127.0.0.1:*")
      endpoint = try #require(socket.lastEndpoint)
      socket.close()
      withExtendedLifetime(context) {}
    }
    let client = try RequestClient(endpoint: endpoint, timeout: .milliseconds(400))
    let start = ContinuousClock.now
    let error = #expect(throws: ClientError.self) {
      try client.request(
        .workers, WorkersRequest(requestID: "r1"), requestID: "r1", expecting: [WorkerView].self)
    }
    let elapsed = ContinuousClock.now - start
    guard case .unreachable(let reported, _, _) = error else {
      Issue.record("expected unreachable, got \(String(describing: error))")
      return
    }
    #expect(reported == endpoint)
    #expect(elapsed >= .milliseconds(350))
    #expect(elapsed < .seconds(60))
    #expect(error?.description.contains(endpoint) == true)
  }

  @Test func requestClientSkipsLateRepliesAndReportsRefusals() throws {
    let context = ZMQContext()
    let bound = EndpointBox()
    let view = WorkerView(
      id: "w-1", name: "gpu-box", state: .online, gpus: [], diskFree: 1, slots: 1, running: 0,
      lastSeen: "2026-01-01T00:00:00.000Z", labels: [:], cpuCores: 2, memoryTotal: 3)
    let server = Responder { request in
      let id = (try? request.decode(RequestIDOnly.self))?.requestID ?? ""
      switch request.type {
      case .workers:
        return [
          // A late answer to some earlier request, then the real one.
          WireEnvelope(.reply, Reply(requestID: "earlier", result: [WorkerView]())),
          WireEnvelope(.heartbeat, HeartbeatMessage(workerID: "noise")),
          WireEnvelope(.reply, Reply(requestID: id, result: [view])),
        ]
      case .drain:
        return [
          WireEnvelope(.error, ErrorReply(requestID: "earlier", message: "not this one")),
          WireEnvelope(.error, ErrorReply(requestID: id, message: "no worker named 'x'")),
        ]
      default:
        return []
      }
    }
    let loop = try SocketLoop(name: "test-responder", tickInterval: .milliseconds(50), handler: server) {
      let socket = try ZMQSocket(context: context, kind: .router)
      try socket.bind("tcp://127.0.0.1:*")
      bound.value.withLock { $0 = socket.lastEndpoint }
      return socket
    }
    defer { loop.shutdown() }
    let endpoint = try #require(bound.value.withLock { $0 })

    let client = try RequestClient(endpoint: endpoint, timeout: .seconds(10))
    let workers = try client.request(
      .workers, WorkersRequest(requestID: "r1"), requestID: "r1", expecting: [WorkerView].self)
    #expect(workers == [view])

    let error = #expect(throws: ClientError.self) {
      try client.request(
        .drain, DrainRequest(requestID: "r2", worker: "x"), requestID: "r2", expecting: WorkerView.self)
    }
    guard case .refused(let message) = error else {
      Issue.record("expected refused, got \(String(describing: error))")
      return
    }
    #expect(message == "no worker named 'x'")

    // No answer at all within the timeout is `unreachable` too.
    client.timeout = .milliseconds(300)
    let silent = #expect(throws: ClientError.self) {
      try client.request(
        .jobs, JobsRequest(requestID: "r3", state: nil, worker: nil, limit: nil), requestID: "r3",
        expecting: [JobView].self)
    }
    guard case .unreachable = silent else {
      Issue.record("expected unreachable, got \(String(describing: silent))")
      return
    }
  }
}
