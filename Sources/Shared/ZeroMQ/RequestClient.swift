import CZeroMQ
import Foundation

/// A client's request/reply conversation with the coordinator, on the calling thread.
/// It is used by short-lived CLI commands, which run on the main thread, not on the
/// concurrency pool, so blocking in `zmq_poll` here is what we want.
public final class RequestClient {
  public let endpoint: String
  private let context: ZMQContext
  private let socket: ZMQSocket
  public var timeout: Duration

  /// Whether the conversation is authenticated, so a timeout can say what to check.
  private let secured: Bool

  public init(endpoint: String, timeout: Duration = .seconds(5), keys: PeerKeys? = nil) throws(ClientError) {
    self.endpoint = endpoint
    secured = keys != nil
    self.timeout = timeout
    context = ZMQContext()
    do {
      socket = try ZMQSocket(context: context, kind: .dealer)
      try socket.setOption(ZMQ_LINGER, Int32(0))
      // Queue nothing for a peer that is not there, so a dead coordinator gives a
      // timeout instead of a message delivered minutes later.
      try socket.setOption(ZMQ_IMMEDIATE, Int32(1))
      if let keys { try socket.makeCurveClient(keys) }
      try socket.connect(endpoint)
    } catch {
      throw .connect(endpoint: endpoint, detail: error.description)
    }
  }

  deinit { socket.close() }

  /// Sends one request and waits for its reply, skipping late replies to earlier ones.
  public func request<Request: Encodable, Result: Codable & Sendable>(
    _ type: MessageType, _ header: Request, requestID: String, payload: [Data] = [],
    expecting: Result.Type
  ) throws(ClientError) -> Result {
    try requestWithPayload(type, header, requestID: requestID, payload: payload, expecting: Result.self)
      .result
  }

  /// `request`, also returning the reply's payload frames (an artifact's bytes).
  public func requestWithPayload<Request: Encodable, Result: Codable & Sendable>(
    _ type: MessageType, _ header: Request, requestID: String, payload: [Data] = [],
    expecting: Result.Type
  ) throws(ClientError) -> (result: Result, payload: [Data]) {
    let envelope = WireEnvelope(type, header, payload: payload)
    let deadline = ContinuousClock.now.advanced(by: timeout)
    // With ZMQ_IMMEDIATE the send waits until a connection exists; wait in poll for
    // writability rather than failing at once while the TCP handshake is under way.
    var sent = false
    while !sent {
      do {
        sent = try socket.send(envelope.frames)
      } catch {
        throw .transport(endpoint: endpoint, detail: error.description)
      }
      if sent { break }
      guard let remaining = remainingMs(until: deadline), remaining > 0 else {
        throw .unreachable(endpoint: endpoint, seconds: timeout.seconds, secured: secured)
      }
      var item = zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLOUT), revents: 0)
      _ = zmq_poll(&item, 1, min(remaining, 50))
    }
    while true {
      guard let remaining = remainingMs(until: deadline), remaining > 0 else {
        throw .unreachable(endpoint: endpoint, seconds: timeout.seconds, secured: secured)
      }
      var item = zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
      let rc = zmq_poll(&item, 1, remaining)
      if rc < 0 {
        if zmq_errno() == EINTR { continue }
        throw .transport(endpoint: endpoint, detail: ZMQError("zmq_poll").description)
      }
      if rc == 0 { continue }
      let frames: [Data]?
      do {
        frames = try socket.receive()
      } catch {
        throw .transport(endpoint: endpoint, detail: error.description)
      }
      guard let frames else { continue }
      let reply: WireEnvelope
      do {
        reply = try WireEnvelope(frames: frames)
      } catch {
        throw .badReply(detail: error.description)
      }
      switch reply.type {
      case .error:
        guard let error = try? reply.decode(ErrorReply.self) else {
          throw .badReply(detail: "unreadable error reply")
        }
        if let id = error.requestID, id != requestID { continue }
        throw .refused(error.message)
      case .reply:
        guard let id = (try? reply.decode(RequestIDOnly.self))?.requestID, id == requestID else {
          continue
        }
        do {
          return (try reply.decode(Reply<Result>.self).result, reply.payload)
        } catch {
          throw .badReply(detail: error.description)
        }
      default:
        continue
      }
    }
  }

  private func remainingMs(until deadline: ContinuousClock.Instant) -> Int? {
    let now = ContinuousClock.now
    guard now < deadline else { return nil }
    return Int((deadline - now).milliseconds.rounded(.up))
  }
}

public enum ClientError: Error, CustomStringConvertible, Sendable {
  case connect(endpoint: String, detail: String)
  case unreachable(endpoint: String, seconds: Double, secured: Bool)
  case transport(endpoint: String, detail: String)
  case badReply(detail: String)
  case refused(String)

  public var description: String {
    switch self {
    case .connect(let ep, let detail): "cannot connect to coordinator at \(ep): \(detail)"
    case .unreachable(let ep, let seconds, let secured):
      "no answer from the coordinator at \(ep) within \(Int(seconds)) s; is `pinpool coordinator` running there? "
        + "(set --coordinator or PINPOOL_COORDINATOR)"
        + (secured
          ? " If it runs, it may not have enrolled this key, or coordinator.key may not be its key."
          : " If it uses keys, pass --keys DIR (or set PINPOOL_KEYS).")
    case .transport(let ep, let detail): "talking to the coordinator at \(ep) failed: \(detail)"
    case .badReply(let detail): "the coordinator sent a reply this client cannot read: \(detail)"
    case .refused(let message): message
    }
  }
}

extension Duration {
  public var seconds: Double { milliseconds / 1000 }
}
