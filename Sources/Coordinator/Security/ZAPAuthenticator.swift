import CZeroMQ
import Foundation
import Logging
import Shared

/// The ZAP handler (ZeroMQ RFC 27) that decides every CURVE handshake on the
/// coordinator's endpoint: an enrolled public key is admitted with the User-Id
/// `ROLE:NAME`, anything else is refused before a single message of it is read.
///
/// It rereads the role folders when one of them changes, so enrolling or revoking a key
/// needs no restart (connections already admitted stay until they drop).
final class ZAPAuthenticator: SocketLoopHandler, @unchecked Sendable {
  static let endpoint = "inproc://zeromq.zap.01"
  static let domain = "pinpool"

  private let folder: String
  private let logger: Logger
  private var enrolled: [String: PeerIdentity]
  private var stamps: [String: Date]

  init(keys: ServerKeys, logger: Logger) {
    folder = keys.folder
    self.logger = logger
    enrolled = keys.enrolled
    stamps = [:]
    stamps = folderStamps()
  }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    reloadIfChanged()
    for frames in messages {
      // [routing id, empty, version, request id, domain, address, identity, mechanism, credentials...]
      guard frames.count >= 8 else { continue }
      let head = Array(frames[0...1])
      let version = String(decoding: frames[2], as: UTF8.self)
      let requestID = frames[3]
      let address = String(decoding: frames[5], as: UTF8.self)
      let mechanism = String(decoding: frames[7], as: UTF8.self)
      func reply(_ code: String, _ text: String, userID: String = "") {
        io.send(
          head + [Data("1.0".utf8), requestID, Data(code.utf8), Data(text.utf8), Data(userID.utf8), Data()])
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
      guard let identity = enrolled[key] else {
        logger.warning(
          "refused an unenrolled key", metadata: ["address": "\(address)", "key": "\(key)"])
        reply("400", "key not enrolled")
        continue
      }
      logger.debug("admitted", metadata: ["address": "\(address)", "peer": "\(identity)"])
      reply("200", "OK", userID: identity.userID)
    }
  }

  func tick(io: SocketLoopIO) {}

  private func reloadIfChanged() {
    let now = folderStamps()
    guard now != stamps else { return }
    stamps = now
    do {
      enrolled = try ServerKeys.loadEnrolled(folder)
      logger.info("reloaded enrolled keys", metadata: ["keys": "\(enrolled.count)"])
    } catch {
      logger.error("cannot reload enrolled keys; keeping the previous ones", metadata: ["error": "\(error)"])
    }
  }

  private func folderStamps() -> [String: Date] {
    var stamps: [String: Date] = [:]
    for role in Role.allCases {
      let path = (folder as NSString).appendingPathComponent(role.folder)
      if let date = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date {
        stamps[role.folder] = date
      }
    }
    return stamps
  }
}
