import Foundation
import Logging
import Shared
import Synchronization

/// The public keys the coordinator admits, shared by the ZAP handler (which admits a
/// connection) and the message handler (which checks, for every message, that the key
/// the connection was admitted with is still enrolled). Without that second check a
/// revoked key kept its connection: a worker whose key was deleted went on taking jobs
/// until it happened to reconnect.
///
/// The role folders are reread when one of them changes: at each handshake, and at most
/// once a second from the message handler's tick, so a revocation takes effect within a
/// second even on a connection that never drops.
final class EnrolledKeys: Sendable {
  private struct State {
    var enrolled: [String: PeerIdentity]
    var stamps: [String: Date]
    var lastCheck: Double = 0
  }
  private let folder: String
  private let logger: Logger
  private let state: Mutex<State>

  init(keys: ServerKeys, logger: Logger) {
    folder = keys.folder
    self.logger = logger
    state = Mutex(State(enrolled: keys.enrolled, stamps: Self.stamps(keys.folder)))
  }

  /// Who `key` (Z85) is, after rereading the folders if they changed; nil: not enrolled.
  func identity(forKey key: String) -> PeerIdentity? {
    reloadIfChanged(now: nil)
    return state.withLock { $0.enrolled[key] }
  }

  /// Whether `key` is still enrolled as `identity`, as of the last reread.
  func admits(key: String, as identity: PeerIdentity) -> Bool {
    state.withLock { $0.enrolled[key] == identity }
  }

  /// Rereads the role folders if one changed; with `now`, at most once a second.
  func reloadIfChanged(now: Double?) {
    if let now {
      let due = state.withLock { state -> Bool in
        guard now - state.lastCheck >= 1 else { return false }
        state.lastCheck = now
        return true
      }
      guard due else { return }
    }
    let current = Self.stamps(folder)
    guard state.withLock({ $0.stamps != current }) else { return }
    do {
      let enrolled = try ServerKeys.loadEnrolled(folder)
      state.withLock {
        $0.enrolled = enrolled
        $0.stamps = current
      }
      logger.info("reloaded enrolled keys", metadata: ["keys": "\(enrolled.count)"])
    } catch {
      state.withLock { $0.stamps = current }
      logger.error("cannot reload enrolled keys; keeping the previous ones", metadata: ["error": "\(error)"])
    }
  }

  private static func stamps(_ folder: String) -> [String: Date] {
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
