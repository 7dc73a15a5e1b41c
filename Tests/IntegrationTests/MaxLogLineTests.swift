import Foundation
import Shared
import Testing

/// `pinpool worker --max-log-line`: a longer output line reaches the coordinator as
/// several lines, each but the last ending with the continuation marker; a bad size is
/// refused before the worker starts.
@Suite(.serialized)
struct MaxLogLineTests {
  @Test func aLongLineIsStoredInMarkedPiecesAndBadSizesAreRefused() throws {
    try withPool { pool in
      for (size, expected) in [
        ("12", "outside 1KiB...1MiB"), ("2MiB", "outside 1KiB...1MiB"), ("1TB", "outside"),
        ("lots", "--max-log-line"),
      ] {
        let refused = pool.cli([
          "worker", "--root", pool.workerRoot("bad"), "--no-gpu", "--max-log-line", size,
        ])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains(expected), "\(refused.stderr)")
      }
      try pool.startCoordinator()
      try pool.startWorker("w", extra: ["--max-log-line", "1KiB"])
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "head -c 2500 /dev/zero | tr '\\0' y; echo; echo after" } } ] }"#,
        in: pool.directory)
      let id = try pool.submit([script])
      #expect(try pool.waitForFinal(id).state == .succeeded)
      let lines = try pool.logLines(id).filter { $0.stream == .stdout }.map(\.line)
      let marker = " [pinpool: line continues]"
      #expect(
        lines == [
          String(repeating: "y", count: 1024) + marker, String(repeating: "y", count: 1024) + marker,
          String(repeating: "y", count: 452), "after",
        ])
    }
  }
}
