import Foundation
import Shared
import Synchronization

/// Scripts already read and checked, by their bytes and the name they are shown under.
/// An array's jobs all run one script; parsing and validating it again for each cost
/// as much as a trivial job's own command line took to start.
///
/// Only scripts that loaded and validated are kept: both steps are pure functions of
/// the bytes and the name, so a kept one is exactly what loading again would give.
final class ParsedScripts: Sendable {
  struct Key: Hashable {
    let file: String
    let bytes: Data
  }

  /// The worker's: it runs a handful of distinct scripts at a time.
  static let shared = ParsedScripts(capacity: 32)

  let capacity: Int
  private let scripts = Mutex<[Key: Script]>([:])

  init(capacity: Int) { self.capacity = capacity }

  func script(_ bytes: Data, file: String) -> Script? {
    scripts.withLock { $0[Key(file: file, bytes: bytes)] }
  }

  /// When full, it starts afresh rather than keep ages per entry.
  func keep(_ script: Script, _ bytes: Data, file: String) {
    scripts.withLock { scripts in
      if scripts.count >= capacity { scripts.removeAll(keepingCapacity: true) }
      scripts[Key(file: file, bytes: bytes)] = script
    }
  }

  var count: Int { scripts.withLock { $0.count } }
}
