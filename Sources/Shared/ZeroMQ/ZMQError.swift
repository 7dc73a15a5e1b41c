import CZeroMQ

/// A libzmq call that failed, with the call's name and libzmq's own words for errno,
/// so "Address already in use" reaches the operator instead of a number.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
  public let operation: String
  public let code: Int32
  public let detail: String?

  public init(_ operation: String, code: Int32 = zmq_errno(), detail: String? = nil) {
    self.operation = operation
    self.code = code
    self.detail = detail
  }

  public var message: String { String(cString: zmq_strerror(code)) }

  public var description: String {
    "\(operation) failed: \(message)" + (detail.map { " (\($0))" } ?? "")
  }

  var isAgain: Bool { code == EAGAIN }
  var isInterrupted: Bool { code == EINTR }
}
