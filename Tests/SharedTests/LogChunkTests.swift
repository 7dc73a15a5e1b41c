import Foundation
import Testing

@testable import Shared

@Suite struct LogChunkTests {
  let sample: [(stream: LogStream, time: Double, text: String)] = [
    (.stdout, 1_732_500_000.123_456, "héllo ✓"),
    (.stderr, 2, ""),
    (.pinpool, 1e-5, "step 1/2: shell.run"),
    (.stdout, 4, "a\nb\u{0}\"\\"),
  ]

  @Test func linesReadBackAsWritten() throws {
    let chunk = LogChunk(sample)
    #expect(chunk.count == 4)
    #expect(chunk.bytes.count == 4 * LogChunk.headerSize + sample.reduce(0) { $0 + $1.text.utf8.count })
    let lines = chunk.lines(firstSeq: 7)
    #expect(lines.map(\.seq) == [7, 8, 9, 10])
    #expect(lines.map(\.stream) == sample.map(\.stream))
    #expect(lines.map(\.time) == sample.map(\.time))
    #expect(lines.map(\.line) == sample.map(\.text))
    // What is sent is what is received: the validating reader agrees.
    #expect(try LogChunk(validating: chunk.bytes, expectedCount: 4) == chunk)
  }

  @Test func recordsGatheredElsewhereMakeTheSameChunk() {
    var buffer: [UInt8] = []
    for line in sample {
      var text = line.text
      text.withUTF8 { LogChunk.appendRecord(to: &buffer, stream: line.stream, time: line.time, text: $0) }
    }
    #expect(LogChunk(records: buffer, count: sample.count) == LogChunk(sample))
  }

  @Test func droppingLinesKeepsTheRest() {
    let chunk = LogChunk(sample)
    #expect(chunk.dropping(first: 0) == chunk)
    #expect(chunk.dropping(first: 2) == LogChunk(Array(sample.dropFirst(2))))
    #expect(chunk.dropping(first: 4).count == 0)
    #expect(chunk.dropping(first: 9).bytes.isEmpty)
    var joined = LogChunk(Array(sample.prefix(1)))
    joined.append(LogChunk(Array(sample.dropFirst())))
    #expect(joined == chunk)
  }

  @Test func textThatIsNotUTF8IsKeptAsBytesAndReadLeniently() throws {
    var chunk = LogChunk()
    let bytes: [UInt8] = [0x61, 0xC3, 0x28, 0x62]
    bytes.withUnsafeBufferPointer { chunk.append(stream: .stdout, time: 1, text: $0) }
    var seen: [UInt8] = []
    chunk.forEach { _, _, text in seen = Array(text) }
    #expect(seen == bytes)
    #expect(chunk.lines(firstSeq: 1)[0].line == "a\u{FFFD}(b")
  }

  @Test func malformedBytesAreRefusedWithTheOffsetAndTheReason() {
    let good = LogChunk(sample).bytes
    func problem(_ bytes: Data, count: Int? = nil) -> String? {
      do {
        _ = try LogChunk(validating: bytes, expectedCount: count)
        return nil
      } catch {
        return error.description
      }
    }
    #expect(problem(Data()) == nil)
    #expect(problem(good.prefix(5)) == "log chunk, byte 0: a record header needs 13 bytes, 5 remain")
    #expect(problem(good.prefix(20)) == "log chunk, byte 0: the text claims 10 bytes, 7 remain")
    var badStream = good
    badStream[badStream.startIndex] = 7
    #expect(problem(badStream) == "log chunk, byte 0: unknown stream code 7 (expected 0, 1 or 2)")
    var badTime = LogChunk([(.stdout, .nan, "x")]).bytes
    #expect(problem(badTime) == "log chunk, byte 0: the time is not a plausible number of seconds since 1970")
    for time in [Double.infinity, 1e300, -1e12] {
      badTime = LogChunk([(.stdout, time, "x")]).bytes
      #expect(problem(badTime) != nil, "\(time)")
    }
    #expect(problem(good, count: 3) == "log chunk, byte \(good.count): holds 4 lines, the header says 3")
    // A length that would overflow an offset is refused, not trusted.
    var huge = LogChunk([(.stdout, 1, "x")]).bytes
    huge.replaceSubrange(1..<5, with: [0xFF, 0xFF, 0xFF, 0xFF])
    #expect(problem(huge) == "log chunk, byte 0: the text claims 4294967295 bytes, 1 remain")
  }

  @Test func randomBytesNeverTrap() {
    var rng = SplitMix64(seed: 0xC4_0C)
    for _ in 0..<5000 {
      var bytes = LogChunk(Array(sample.prefix(Int.random(in: 0...4, using: &rng)))).bytes
      for _ in 0..<Int.random(in: 0...3, using: &rng) where !bytes.isEmpty {
        bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      if let chunk = try? LogChunk(validating: bytes) {
        #expect(chunk.lines(firstSeq: 1).count == chunk.count)
        #expect(chunk.dropping(first: 1).count == max(0, chunk.count - 1))
      }
    }
  }
}
