import Foundation

/// The coordinator's keys folder: its own pair (`coordinator.key_secret`) and the
/// enrolled public keys, one folder per role.
///
///     KEYS/coordinator.key          shared with every worker and client
///     KEYS/coordinator.key_secret   mode 0600
///     KEYS/workers/NAME.key         enrolled workers
///     KEYS/clients/NAME.key         people and scripts that submit
///     KEYS/admins/NAME.key          people who may also drain, undrain and cancel any job
public struct ServerKeys: Sendable {
  public var folder: String
  public var pair: CurveKeyPair
  /// Enrolled public keys (Z85) → who they are.
  public var enrolled: [String: PeerIdentity]

  public init(folder: String, pair: CurveKeyPair, enrolled: [String: PeerIdentity]) {
    self.folder = folder
    self.pair = pair
    self.enrolled = enrolled
  }

  public static func load(_ folder: String) throws(KeyFileError) -> ServerKeys {
    let pair = try CertificateFile.readPair(try KeyFolder.ownSecret(in: folder, preferring: "coordinator"))
    return ServerKeys(folder: folder, pair: pair, enrolled: try loadEnrolled(folder))
  }

  /// Every `*.key` under the role folders. A key enrolled twice is an error: its role
  /// would depend on the order files are read in.
  public static func loadEnrolled(_ folder: String) throws(KeyFileError) -> [String: PeerIdentity] {
    var enrolled: [String: PeerIdentity] = [:]
    var source: [String: String] = [:]
    var anyFolder = false
    for role in Role.allCases {
      let roleFolder = (folder as NSString).appendingPathComponent(role.folder)
      guard let names = try? FileManager.default.contentsOfDirectory(atPath: roleFolder) else { continue }
      anyFolder = true
      for file in names.sorted() where file.hasSuffix(CertificateFile.publicSuffix) {
        let path = (roleFolder as NSString).appendingPathComponent(file)
        let (_, key) = try CertificateFile.readPublic(path)
        if let first = source[key.z85] { throw .duplicate(key: key.z85, first: first, second: path) }
        source[key.z85] = path
        // The file name is the name the pool knows it by (`clients/alice.key` is alice),
        // whatever the certificate's metadata says.
        enrolled[key.z85] = PeerIdentity(role: role, name: CertificateFile.stem(file))
      }
    }
    guard anyFolder else {
      throw .missing(
        path: (folder as NSString).appendingPathComponent("{workers,clients,admins}"),
        hint:
          "enrol public keys with `pinpool keys enroll KEYFILE --keys \(folder) --role worker|client|admin`")
    }
    return enrolled
  }
}

/// A worker's or client's keys folder: its own pair and the coordinator's public key.
///
///     KEYS/NAME.key, KEYS/NAME.key_secret   this machine's or person's pair (exactly one)
///     KEYS/coordinator.key                  the coordinator's public key
public struct PeerKeys: Sendable {
  public var pair: CurveKeyPair
  public var serverKey: CurveKey

  public init(pair: CurveKeyPair, serverKey: CurveKey) {
    self.pair = pair
    self.serverKey = serverKey
  }

  public static func load(_ folder: String) throws(KeyFileError) -> PeerKeys {
    let serverPath = (folder as NSString).appendingPathComponent("coordinator" + CertificateFile.publicSuffix)
    guard FileManager.default.fileExists(atPath: serverPath) else {
      throw .missing(path: serverPath, hint: "copy the coordinator's public key (its coordinator.key) here")
    }
    let (_, serverKey) = try CertificateFile.readPublic(serverPath)
    let pair = try CertificateFile.readPair(try KeyFolder.ownSecret(in: folder, excluding: "coordinator"))
    return PeerKeys(pair: pair, serverKey: serverKey)
  }
}

enum KeyFolder {
  /// The one `*.key_secret` a folder holds (or `preferring` when it is there).
  static func ownSecret(in folder: String, preferring: String? = nil, excluding: String? = nil)
    throws(KeyFileError) -> String
  {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
      throw .missing(path: folder, hint: "make it with `pinpool keys generate --out \(folder) --name NAME`")
    }
    if let preferring {
      let path = (folder as NSString).appendingPathComponent(preferring + CertificateFile.secretSuffix)
      if FileManager.default.fileExists(atPath: path) { return path }
    }
    let secrets = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
      $0.hasSuffix(CertificateFile.secretSuffix) && CertificateFile.stem($0) != excluding
    }.sorted()
    guard secrets.count == 1 else {
      if secrets.isEmpty {
        throw .missing(
          path: (folder as NSString).appendingPathComponent(
            (preferring ?? "NAME") + CertificateFile.secretSuffix),
          hint: "make a pair with `pinpool keys generate --out \(folder) --name \(preferring ?? "NAME")`")
      }
      throw .ambiguous(folder: folder, found: secrets)
    }
    return (folder as NSString).appendingPathComponent(secrets[0])
  }
}
