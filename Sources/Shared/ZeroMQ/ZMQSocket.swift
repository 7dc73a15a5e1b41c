import CZeroMQ
import Foundation

/// A libzmq socket. Not thread-safe: it must be created, used and closed on one thread,
/// which is what `SocketLoop` guarantees for long-lived sockets.
public final class ZMQSocket {
  public enum Kind: Sendable {
    case router, dealer, pair

    var raw: Int32 {
      switch self {
      case .router: ZMQ_ROUTER
      case .dealer: ZMQ_DEALER
      case .pair: ZMQ_PAIR
      }
    }
  }

  let handle: UnsafeMutableRawPointer
  private var closed = false

  public init(context: ZMQContext, kind: Kind) throws(ZMQError) {
    guard let handle = zmq_socket(context.handle, kind.raw) else { throw ZMQError("zmq_socket") }
    self.handle = handle
    // Shutdown must never hang on a peer that went away: give pending sends a
    // moment, then drop them. Anything that must survive is persisted and resent.
    try setOption(ZMQ_LINGER, Int32(200))
  }

  deinit { close() }

  public func close() {
    guard !closed else { return }
    closed = true
    zmq_close(handle)
  }

  public func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
    var v = value
    guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else {
      throw ZMQError("zmq_setsockopt(\(option))")
    }
  }

  public func setOption64(_ option: Int32, _ value: Int64) throws(ZMQError) {
    var v = value
    guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else {
      throw ZMQError("zmq_setsockopt(\(option))")
    }
  }

  public func setOption(_ option: Int32, bytes: [UInt8]) throws(ZMQError) {
    let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
    guard rc == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
  }

  public func setOption(_ option: Int32, string: String) throws(ZMQError) {
    try setOption(option, bytes: Array(string.utf8))
  }

  public func bind(_ endpoint: String) throws(ZMQError) {
    guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
  }

  public func connect(_ endpoint: String) throws(ZMQError) {
    guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
  }

  /// The endpoint actually bound, useful after binding `tcp://127.0.0.1:*`.
  public var lastEndpoint: String? {
    var buffer = [CChar](repeating: 0, count: 512)
    var size = buffer.count
    guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Sends all frames as one multipart message. Returns false when the socket cannot
  /// take the message now (high-water mark) and nothing was queued; libzmq makes a
  /// multipart message atomic, so once the first frame is accepted the rest are too.
  @discardableResult
  public func send(_ frames: [Data], dontWait: Bool = true) throws(ZMQError) -> Bool {
    precondition(!frames.isEmpty, "a message has at least one frame")
    for (index, frame) in frames.enumerated() {
      var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
      if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
      while true {
        let rc = frame.withUnsafeBytes { raw in
          zmq_send(handle, raw.baseAddress, raw.count, flags)
        }
        if rc >= 0 { break }
        let error = ZMQError("zmq_send")
        if error.isInterrupted { continue }
        if error.isAgain, index == 0 { return false }
        // EHOSTUNREACH from a ROUTER with mandatory routing: the peer is gone.
        throw error
      }
    }
    return true
  }

  /// Receives one whole multipart message, or nil when none is waiting. Each frame is
  /// copied out of its `zmq_msg_t` and "more" is read before the message is closed.
  public func receive(dontWait: Bool = true) throws(ZMQError) -> [Data]? {
    var ignored = MessageOrigin()
    return try receive(dontWait: dontWait, origin: &ignored, readOrigin: false)
  }

  /// Receives one whole message with where it came from: the User-Id its connection's
  /// ZAP handler gave (nil without authentication) and the peer's address.
  public func receive(dontWait: Bool = true, origin: inout MessageOrigin) throws(ZMQError) -> [Data]? {
    try receive(dontWait: dontWait, origin: &origin, readOrigin: true)
  }

  /// Either of the above; `SocketLoop` drains with one loop whichever its handler wants.
  func receive(dontWait: Bool, origin: inout MessageOrigin, readOrigin: Bool) throws(ZMQError)
    -> [Data]?
  {
    var frames: [Data] = []
    while true {
      var message = zmq_msg_t()
      zmq_msg_init(&message)
      let rc = zmq_msg_recv(&message, handle, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0)
      if rc < 0 {
        let error = ZMQError("zmq_msg_recv")
        zmq_msg_close(&message)
        if error.isInterrupted { continue }
        if error.isAgain, frames.isEmpty { return nil }
        throw error
      }
      let size = zmq_msg_size(&message)
      if size == 0 {
        frames.append(Data())
      } else {
        frames.append(Data(bytes: zmq_msg_data(&message), count: size))
      }
      if readOrigin, origin.address == nil {
        // Read before closing: the properties live in the message's metadata (which a
        // ROUTER's routing-id frame does not carry, so every frame is asked).
        origin.userID = zmq_msg_gets(&message, "User-Id").map { String(cString: $0) }
        origin.address = zmq_msg_gets(&message, "Peer-Address").map { String(cString: $0) }
        origin.key = zmq_msg_gets(&message, MessageOrigin.keyProperty).map { String(cString: $0) }
      }
      let more = zmq_msg_more(&message) != 0
      zmq_msg_close(&message)
      if !more { return frames }
    }
  }

  // MARK: CurveZMQ

  /// Makes this (bound) socket a CURVE server whose handshakes the ZAP handler on
  /// `inproc://zeromq.zap.01` decides. That handler must be bound first: libzmq's option
  /// to refuse everyone when it is missing (ZMQ_ZAP_ENFORCE_DOMAIN) is draft API.
  public func makeCurveServer(secretKey: CurveKey, domain: String) throws(ZMQError) {
    try setOption(ZMQ_CURVE_SERVER, Int32(1))
    try setOption(ZMQ_CURVE_SECRETKEY, string: secretKey.z85 + "\0")
    try setOption(ZMQ_ZAP_DOMAIN, string: domain)
  }

  /// Makes this (connecting) socket a CURVE client of the server with `serverKey`.
  public func makeCurveClient(_ keys: PeerKeys) throws(ZMQError) {
    try setOption(ZMQ_CURVE_SERVERKEY, string: keys.serverKey.z85 + "\0")
    try setOption(ZMQ_CURVE_PUBLICKEY, string: keys.pair.publicKey.z85 + "\0")
    try setOption(ZMQ_CURVE_SECRETKEY, string: keys.pair.secretKey.z85 + "\0")
  }
}

/// Where a received message came from, as libzmq knows it.
public struct MessageOrigin: Sendable, Hashable {
  /// What the ZAP handler said the connection is (`ROLE:NAME` on a coordinator with keys).
  public var userID: String?
  /// The peer's IP address (TCP connections only).
  public var address: String?
  /// The CURVE public key (Z85) the ZAP handler admitted the connection with, which it
  /// attaches as the `X-Key` property (`keyProperty`); nil without keys.
  public var key: String?
  /// The message property carrying the admitted key; ZAP metadata names start with X-.
  public static let keyProperty = "X-Key"
  public init(userID: String? = nil, address: String? = nil, key: String? = nil) {
    self.key = key
    self.userID = userID
    self.address = address
  }
}
