import Crypto
import Foundation

extension Data {
  /// Lowercase hex SHA-256, the form `sha256sum` prints, so people can compare by eye.
  public var sha256Hex: String {
    SHA256.hash(data: self).map { String(format: "%02x", $0) }.joined()
  }
}
