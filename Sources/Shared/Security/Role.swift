/// What an enrolled key may do. Roles are folders of the coordinator's keys folder
/// (`workers/`, `clients/`, `admins/`), so enrolling is copying a public key file.
public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
  case worker, client, admin

  /// The folder under the coordinator's keys folder holding this role's public keys.
  public var folder: String { rawValue + "s" }
}

/// Who is on the other end of a connection, as the coordinator's ZAP handler found it.
/// It travels as the connection's ZeroMQ User-Id, `ROLE:NAME`.
public struct PeerIdentity: Sendable, Hashable, CustomStringConvertible {
  public var role: Role
  public var name: String

  public init(role: Role, name: String) {
    self.role = role
    self.name = name
  }

  public init?(userID: String) {
    guard let colon = userID.firstIndex(of: ":"), let role = Role(rawValue: String(userID[..<colon])) else {
      return nil
    }
    self.role = role
    self.name = String(userID[userID.index(after: colon)...])
  }

  public var userID: String { "\(role.rawValue):\(name)" }
  public var description: String { "\(role.rawValue) \(name)" }
}
