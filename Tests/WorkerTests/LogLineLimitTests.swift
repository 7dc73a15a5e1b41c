import Foundation
import Shared
import Synchronization
import Testing

@testable import Worker

/// A job's output line longer than the limit (`--max-log-line`) becomes several lines,
/// each but the last ending with the continuation marker; nothing is dropped.
@Suite struct LogLineLimitTests {
  let marker = ShellOptions.lineContinuationMarker

  /// Feeds `bytes` to a splitter in the given chunk sizes and returns every line.
  func split(_ bytes: [UInt8], limit: Int, chunks: [Int]? = nil) -> [String] {
    var splitter = ShellLineSplitter(maxLineBytes: limit)
    var lines: [String] = []
    var offset = 0
    var sizes = chunks ?? [bytes.count]
    while offset < bytes.count {
      let size = min(max(1, sizes.isEmpty ? bytes.count : sizes.removeFirst()), bytes.count - offset)
      bytes[offset..<offset + size].withUnsafeBufferPointer {
        splitter.feed($0) { lines.append(String(decoding: $0, as: UTF8.self)) }
      }
      offset += size
    }
    splitter.finish { lines.append(String(decoding: $0, as: UTF8.self)) }
    return lines
  }

  /// Joins the pieces of split lines back: drops each marker and appends the next piece.
  func rejoin(_ lines: [String]) -> [String] {
    var out: [String] = []
    var carry: String?
    for line in lines {
      if line.hasSuffix(marker) {
        carry = (carry ?? "") + line.dropLast(marker.count)
      } else {
        out.append((carry ?? "") + line)
        carry = nil
      }
    }
    if let carry { out.append(carry) }
    return out
  }

  @Test func aLineOfExactlyTheLimitStaysWhole() {
    let line = String(repeating: "a", count: 32)
    #expect(split(Array((line + "\n").utf8), limit: 32) == [line])
    #expect(split(Array((line + "\r\n").utf8), limit: 32, chunks: [32, 1, 1]) == [line])
    #expect(split(Array(line.utf8), limit: 32) == [line])
  }

  @Test func oneByteOverTheLimitIsTwoLinesAndTheFirstSaysSo() {
    let line = String(repeating: "a", count: 32) + "b"
    #expect(split(Array((line + "\n").utf8), limit: 32) == [String(repeating: "a", count: 32) + marker, "b"])
    let long = String(repeating: "x", count: 100)
    #expect(
      split(Array(long.utf8), limit: 32, chunks: [7, 50, 1, 42]) == [
        String(repeating: "x", count: 32) + marker, String(repeating: "x", count: 32) + marker,
        String(repeating: "x", count: 32) + marker, "xxxx",
      ])
  }

  @Test func cutsFallBetweenCharacters() {
    // 31 ASCII bytes, then a 4-byte emoji across the 32-byte limit.
    let line = String(repeating: "a", count: 31) + "😀" + "é"
    let pieces = split(Array(line.utf8), limit: 32)
    #expect(pieces == [String(repeating: "a", count: 31) + marker, "😀é"])
    #expect(!pieces.joined().contains("\u{FFFD}"))
  }

  /// Random text (ASCII, 2- and 4-byte characters, every line ending) in random chunks:
  /// no piece holds more than the limit, and rejoining the pieces gives every original
  /// line back, in order.
  @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
  func randomOutputRejoinsExactly(seed: UInt64) {
    var rng = SplitMix64(seed: seed &* 0x9E37_79B9)
    let alphabet = ["a", "b", " ", "é", "😀", "\t", "\n", "\r\n", "\r", "[", "]"]
    let limit = Int.random(in: 4...40, using: &rng)
    for _ in 0..<40 {
      var text = ""
      for _ in 0..<Int.random(in: 0...400, using: &rng) {
        let long = Int.random(in: 0..<20, using: &rng) == 0
        text +=
          long
          ? String(repeating: "z", count: Int.random(in: 1...120, using: &rng))
          : alphabet.randomElement(using: &rng)!
      }
      let bytes = Array(text.utf8)
      let chunks = (0..<64).map { _ in Int.random(in: 1...50, using: &rng) }
      let pieces = split(bytes, limit: limit, chunks: chunks)
      for piece in pieces {
        let content = piece.hasSuffix(marker) ? String(piece.dropLast(marker.count)) : piece
        #expect(content.utf8.count <= limit, "piece over \(limit) bytes: \(piece.debugDescription)")
        #expect(!content.isEmpty || !piece.hasSuffix(marker), "an empty continued piece")
      }
      #expect(rejoin(pieces) == expectedLines(text), "seed \(seed) limit \(limit): \(text.debugDescription)")
    }
  }

  /// The lines a terminal would show: `\n`, `\r\n` and a lone `\r` end one; a trailing
  /// partial line counts.
  func expectedLines(_ text: String) -> [String] {
    var lines: [String] = []
    var current: [UInt8] = []
    var bytes = Array(text.utf8)[...]
    while let byte = bytes.popFirst() {
      if byte == 0x0A || byte == 0x0D {
        lines.append(String(decoding: current, as: UTF8.self))
        current = []
        if byte == 0x0D, bytes.first == 0x0A { bytes.removeFirst() }
      } else {
        current.append(byte)
      }
    }
    if !current.isEmpty { lines.append(String(decoding: current, as: UTF8.self)) }
    return lines
  }

  @Test func aRealProcessLongLineArrivesWholeInMarkedPieces() async throws {
    let lines = Mutex<[String]>([])
    let outcome = try await ShellProcess.run(
      ShellCommandRequest(
        command: "head -c 2500 /dev/zero | tr '\\0' 'x'; echo; echo short",
        workingDirectory: "/", environment: ["PATH": "/usr/bin:/bin"]),
      options: ShellOptions(maxLineBytes: 1024)
    ) { _, line in
      lines.withLock { $0.append(line.text) }
      return .continue_
    }
    guard case .exited(0) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    let seen = lines.withLock { $0 }
    #expect(seen.count == 4)
    #expect(seen.prefix(2).allSatisfy { $0 == String(repeating: "x", count: 1024) + marker })
    #expect(seen[2] == String(repeating: "x", count: 452))
    #expect(seen[3] == "short")
    #expect(rejoin(seen) == [String(repeating: "x", count: 2500), "short"])
  }
}
