import Shared

/// Which role may send which message, on a coordinator with keys. A pure function of
/// the message type and the connection's identity, so every rule is tested directly.
enum Authorization {
  /// nil when allowed, else the reason the sender reads.
  static func refusal(_ type: MessageType, from identity: PeerIdentity?) -> String? {
    guard let identity else {
      // ZAP admits no connection without an identity; this is defence in depth.
      return "this coordinator requires an enrolled key"
    }
    let allowed: Set<Role>
    switch type {
    case .register, .heartbeat, .logBatch, .progress, .finished, .cleanup, .artifactBegin, .artifactChunk:
      allowed = [.worker]
    case .submit, .status, .jobs, .logs, .workers, .cancel, .artifacts, .artifactFetch:
      allowed = [.client, .admin]
    case .drain, .undrain:
      allowed = [.admin]
    case .registered, .assign, .logAck, .reportAck, .stop, .reregister, .artifactAck, .reply, .error:
      // Coordinator-to-peer types; the dispatcher refuses them for everyone.
      return nil
    }
    guard allowed.contains(identity.role) else {
      let who = Role.allCases.filter(allowed.contains).map(\.rawValue).joined(separator: " or ")
      return
        "\(identity) may not send \(type.rawValue): that needs \(who.first == "a" ? "an" : "a") \(who) key"
    }
    return nil
  }

  /// Whether `identity` may cancel a job `owner` submitted (nil: submitted without keys).
  static func mayCancel(_ identity: PeerIdentity?, jobOwner owner: String?) -> Bool {
    guard let identity else { return true }
    return identity.role == .admin || (identity.role == .client && owner == identity.name)
  }
}

/// A request a connection's role does not allow.
struct AccessError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
