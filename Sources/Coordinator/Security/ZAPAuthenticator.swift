import CZeroMQ
import Foundation
import Logging
import Shared

/// The ZAP handler (ZeroMQ RFC 27) that decides every CURVE handshake on the
/// coordinator's endpoint: an enrolled public key is admitted with the User-Id
/// `ROLE:NAME`, anything else is refused before a single message of it is read.
///
/// Enrolling or revoking a key needs no restart (`EnrolledKeys` rereads the folders). The
/// admitted key goes with every message of the connection as the metadata property
/// `X-Key`, so the message handler can refuse a connection whose key was revoked since.
final class ZAPAuthenticator: SocketLoopHandler, @unchecked Sendable {
  static let endpoint = "inproc://zeromq.zap.01"
  static let domain = "pinpool"

  private let logger: Logger
  private let keys: EnrolledKeys

  init(keys: EnrolledKeys, logger: Logger) {
    self.keys = keys
    self.logger = logger
  }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    for frames in messages {
      // [routing id, empty, version, request id, domain, address, identity, mechanism, credentials...]
      guard frames.count >= 8 else { continue }
      let head = Array(frames[0...1])
      let version = String(decoding: frames[2], as: UTF8.self)
      let requestID = frames[3]
      let address = String(decoding: frames[5], as: UTF8.self)
      let mechanism = String(decoding: frames[7], as: UTF8.self)
      func reply(_ code: String, _ text: String, userID: String = "", metadata: Data = Data()) {
        io.send(
          head + [Data("1.0".utf8), requestID, Data(code.utf8), Data(text.utf8), Data(userID.utf8), metadata])
      }
      guard version == "1.0" else {
        reply("500", "unsupported ZAP version")
        continue
      }
      guard mechanism == "CURVE", frames.count >= 9, frames[8].count == 32 else {
        logger.warning("refused a connection without a CURVE key", metadata: ["address": "\(address)"])
        reply("400", "a CURVE key is required")
        continue
      }
      let key = CurveKey(binary: [UInt8](frames[8]))?.z85 ?? "(not a key)"
      guard let identity = keys.identity(forKey: key) else {
        logger.warning(
          "refused an unenrolled key", metadata: ["address": "\(address)", "key": "\(key)"])
        reply("400", "key not enrolled")
        continue
      }
      logger.debug("admitted", metadata: ["address": "\(address)", "peer": "\(identity)"])
      reply("200", "OK", userID: identity.userID, metadata: Self.metadata([(MessageOrigin.keyProperty, key)]))
    }
  }

  /// ZMTP's property list (RFC 37): a one-byte name length, the name, a four-byte
  /// big-endian value length, the value.
  static func metadata(_ properties: [(String, String)]) -> Data {
    var data = Data()
    for (name, value) in properties {
      data.append(UInt8(name.utf8.count))
      data.append(contentsOf: name.utf8)
      let length = UInt32(value.utf8.count).bigEndian
      withUnsafeBytes(of: length) { data.append(contentsOf: $0) }
      data.append(contentsOf: value.utf8)
    }
    return data
  }

  func tick(io: SocketLoopIO) {}
}
