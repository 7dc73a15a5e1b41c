import CZeroMQ
import Foundation

/// A CurveZMQ key (32 bytes) in its Z85 text form, the form libzmq's socket options and
/// czmq's certificate files use. Validated on construction, so a key that exists is usable.
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
  /// 40 characters of Z85.
  public let z85: String

  public init?(z85 text: String) {
    guard text.utf8.count == 40 else { return nil }
    var decoded = [UInt8](repeating: 0, count: 32)
    guard zmq_z85_decode(&decoded, text) != nil else { return nil }
    z85 = text
  }

  /// A key in its 32-byte binary form, as a ZAP request carries it.
  public init?(binary: [UInt8]) {
    guard binary.count == 32 else { return nil }
    var text = [CChar](repeating: 0, count: 41)
    guard zmq_z85_encode(&text, binary, binary.count) != nil else { return nil }
    self.init(z85: Self.string(text))
  }

  /// The text of a NUL-terminated buffer libzmq filled.
  static func string(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// The public key only, never the secret one, so a key printed in a log is harmless.
  public var description: String { z85 }
}

/// A key pair: what the coordinator, a worker or a client uses for its own side of the
/// handshake.
public struct CurveKeyPair: Sendable, Hashable {
  public let name: String
  public let publicKey: CurveKey
  public let secretKey: CurveKey

  public init(name: String, publicKey: CurveKey, secretKey: CurveKey) {
    self.name = name
    self.publicKey = publicKey
    self.secretKey = secretKey
  }

  /// A fresh pair from libzmq (libsodium's randomness).
  public static func generate(name: String) throws(KeyFileError) -> CurveKeyPair {
    var publicText = [CChar](repeating: 0, count: 41)
    var secretText = [CChar](repeating: 0, count: 41)
    guard zmq_curve_keypair(&publicText, &secretText) == 0 else {
      throw .unsupported("this libzmq cannot make CURVE keys (built without libsodium?)")
    }
    guard let publicKey = CurveKey(z85: CurveKey.string(publicText)),
      let secretKey = CurveKey(z85: CurveKey.string(secretText))
    else {
      throw .unsupported("libzmq returned a key that is not Z85")
    }
    return CurveKeyPair(name: name, publicKey: publicKey, secretKey: secretKey)
  }

  /// Whether this libzmq can do CURVE at all.
  public static var isSupported: Bool { zmq_has("curve") != 0 }
}
