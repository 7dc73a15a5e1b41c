import Foundation
import Shared

/// Scripts already read and checked, by their bytes and the name they are shown under.
/// An array's jobs all run one script; parsing and validating it again for each cost
/// as much as a trivial job's own command line took to start.
///
/// Only scripts that loaded and validated are kept: both steps are pure functions of
/// the bytes and the name, so a kept one is exactly what loading again would give.
enum ParsedScripts {
  struct Key: Hashable, Sendable {
    let file: String
    let bytes: Data
  }

  /// The worker's: it runs a handful of distinct scripts at a time.
  static let shared = BoundedCache<Key, Script>(capacity: 32)
}
