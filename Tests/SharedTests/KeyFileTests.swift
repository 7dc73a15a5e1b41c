import Foundation
import Testing

@testable import Shared

@Suite struct KeyFileTests {
  private func temporaryFolder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pinpool-keys-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  @Test func generatedPairsRoundTripWithTheRightModes() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let pair = try CurveKeyPair.generate(name: "edge-3")
    try CertificateFile.write(pair, to: folder)
    let secretPath = folder + "/edge-3.key_secret"
    let attributes = try FileManager.default.attributesOfItem(atPath: secretPath)
    #expect((attributes[.posixPermissions] as? Int) == 0o600)
    #expect(try CertificateFile.readPair(secretPath) == pair)
    let (name, key) = try CertificateFile.readPublic(folder + "/edge-3.key")
    #expect(name == "edge-3" && key == pair.publicKey)
    // The public file never holds the secret.
    #expect(
      !(try String(contentsOfFile: folder + "/edge-3.key", encoding: .utf8)).contains(pair.secretKey.z85))
    // Never overwritten.
    #expect(throws: KeyFileError.exists(path: folder + "/edge-3.key")) {
      try CertificateFile.write(try CurveKeyPair.generate(name: "edge-3"), to: folder)
    }
  }

  @Test func readsCzmqCertificates() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    // As czmq's zcert_save_public writes it.
    let text = """
      #   ****  Generated on 2024-01-01 00:00:00 by CZMQ  ****
      #   ZeroMQ CURVE Public Certificate

      metadata
          email = "ops@example.com"
          name = "render-box"
      curve
          public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
      """
    try text.write(toFile: folder + "/box.key", atomically: true, encoding: .utf8)
    let (name, key) = try CertificateFile.readPublic(folder + "/box.key")
    #expect(name == "render-box")
    #expect(key.z85 == "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
  }

  @Test func badFilesSayWhatIsWrongAndWhere() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try "curve\n    public-key = \"not a key\"\n".write(
      toFile: folder + "/a.key", atomically: true, encoding: .utf8)
    #expect(
      throws: KeyFileError.malformed(
        path: folder + "/a.key", line: 2, detail: "the public key is not 40 characters of Z85")
    ) {
      try CertificateFile.readPublic(folder + "/a.key")
    }
    try "metadata\n    name = \"x\"\n".write(toFile: folder + "/b.key", atomically: true, encoding: .utf8)
    #expect(
      throws: KeyFileError.malformed(
        path: folder + "/b.key", line: nil, detail: "no `public-key` under `curve`")
    ) {
      try CertificateFile.readPublic(folder + "/b.key")
    }
    try "curve\n    public-key = \"unterminated\n".write(
      toFile: folder + "/c.key", atomically: true, encoding: .utf8)
    #expect(
      throws: KeyFileError.malformed(path: folder + "/c.key", line: 2, detail: "unterminated quoted value")
    ) {
      try CertificateFile.readPublic(folder + "/c.key")
    }
    let pair = try CurveKeyPair.generate(name: "s")
    try CertificateFile.write(pair, to: folder)
    chmod(folder + "/s.key_secret", 0o640)
    #expect(throws: KeyFileError.exposed(path: folder + "/s.key_secret", mode: 0o640)) {
      try CertificateFile.readPair(folder + "/s.key_secret")
    }
    #expect(CurveKey(z85: String(repeating: "\u{7f}", count: 40)) == nil)
  }

  @Test func serverAndPeerFolders() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let server = try CurveKeyPair.generate(name: "coordinator")
    try CertificateFile.write(server, to: folder)
    #expect(throws: KeyFileError.self) { try ServerKeys.load(folder) }
    let alice = try CurveKeyPair.generate(name: "alice")
    try CertificateFile.write(alice, to: folder + "/clients")
    try FileManager.default.removeItem(atPath: folder + "/clients/alice.key_secret")
    let keys = try ServerKeys.load(folder)
    #expect(keys.pair == server)
    #expect(keys.enrolled == [alice.publicKey.z85: PeerIdentity(role: .client, name: "alice")])
    // The same key under two roles is refused: its role would depend on read order.
    try FileManager.default.createDirectory(atPath: folder + "/admins", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: folder + "/clients/alice.key", toPath: folder + "/admins/al.key")
    #expect(
      throws: KeyFileError.duplicate(
        key: alice.publicKey.z85, first: folder + "/clients/alice.key", second: folder + "/admins/al.key")
    ) {
      try ServerKeys.load(folder)
    }

    // A peer's folder: its own pair plus coordinator.key.
    let peer = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: peer) }
    try CertificateFile.write(alice, to: peer)
    #expect(throws: KeyFileError.self) { try PeerKeys.load(peer) }
    try FileManager.default.copyItem(atPath: folder + "/coordinator.key", toPath: peer + "/coordinator.key")
    let loaded = try PeerKeys.load(peer)
    #expect(loaded.pair == alice && loaded.serverKey == server.publicKey)
    try CertificateFile.write(try CurveKeyPair.generate(name: "second"), to: peer)
    #expect(throws: KeyFileError.ambiguous(folder: peer, found: ["alice.key_secret", "second.key_secret"])) {
      try PeerKeys.load(peer)
    }
  }

  @Test func peerIdentityTravelsAsUserID() {
    let identity = PeerIdentity(role: .admin, name: "bob:ops")
    #expect(PeerIdentity(userID: identity.userID) == identity)
    #expect(PeerIdentity(userID: "root:bob") == nil)
    #expect(PeerIdentity(userID: "") == nil)
  }
}
