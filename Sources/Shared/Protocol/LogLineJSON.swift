import Foundation

/// Log lines written as JSON by hand: the same objects `JSONEncoder` writes for `LogLine`
/// and `LogBatchMessage`, field for field, so any JSON decoder reads them. A chatty job's
/// log is millions of these, and `JSONEncoder` (boxing every field through `Encoder`
/// containers) was most of the worker's time, once in the spool and again on the wire.
extension LogLine {
  public func appendJSON(to out: inout [UInt8]) {
    out.append(contentsOf: #"{"seq":"#.utf8)
    out.append(contentsOf: String(seq).utf8)
    out.append(contentsOf: #","stream":""#.utf8)
    out.append(contentsOf: stream.rawValue.utf8)
    out.append(contentsOf: #"","time":"#.utf8)
    // Swift prints the shortest text that reads back as the same Double ("1e-05" is
    // valid JSON too); a time is never infinite or NaN, but JSON could not say so.
    out.append(contentsOf: (time.isFinite ? time : 0).description.utf8)
    out.append(contentsOf: #","line":"#.utf8)
    JSONText.appendString(line, to: &out)
    out.append(UInt8(ascii: "}"))
  }
}

extension LogBatchMessage {
  /// The header of a `logBatch` message.
  public func encodedJSON() -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(96 + lines.reduce(0) { $0 + $1.line.utf8.count + 64 })
    out.append(contentsOf: #"{"workerID":"#.utf8)
    JSONText.appendString(workerID, to: &out)
    out.append(contentsOf: #","jobID":"#.utf8)
    JSONText.appendString(jobID, to: &out)
    out.append(contentsOf: #","attempt":"#.utf8)
    out.append(contentsOf: String(attempt).utf8)
    out.append(contentsOf: #","lines":["#.utf8)
    for (index, line) in lines.enumerated() {
      if index > 0 { out.append(UInt8(ascii: ",")) }
      line.appendJSON(to: &out)
    }
    out.append(contentsOf: "]}".utf8)
    return out
  }
}

enum JSONText {
  private static let hex = Array("0123456789abcdef".utf8)

  /// A JSON string literal: quotes, backslashes and control characters escaped, the
  /// rest copied as UTF-8 (a Swift string is always valid UTF-8).
  static func appendString(_ text: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    var text = text
    // Most lines need no escape at all: copy them whole.
    let plain = text.withUTF8 { bytes in
      !bytes.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    }
    if plain {
      text.withUTF8 { out.append(contentsOf: $0) }
      out.append(UInt8(ascii: "\""))
      return
    }
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
      case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
      case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
      case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
      case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
      case 0..<0x20:
        out.append(contentsOf: #"\u00"#.utf8)
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 0x0F)])
      default: out.append(byte)
      }
    }
    out.append(UInt8(ascii: "\""))
  }
}

extension WireEnvelope {
  /// Decodes a `logBatch` header: a fast path for the JSON `encodedJSON` writes (keys in
  /// that order, no white space, only the escapes it uses), and `JSONDecoder`, with its
  /// precise errors, for anything else. Both end in the same range checks.
  public func decodeLogBatch() throws(WireError) -> LogBatchMessage {
    guard let fast = LogBatchParser.parse(header) else { return try decode(LogBatchMessage.self) }
    do throws(WireCheckError) { try fast.check() } catch {
      throw .malformedHeader(type: type.rawValue, detail: error.description)
    }
    return fast
  }
}

/// Reads exactly the JSON `LogBatchMessage.encodedJSON` writes, or gives up (nil).
enum LogBatchParser {
  static func parse(_ data: Data) -> LogBatchMessage? {
    data.withUnsafeBytes { raw -> LogBatchMessage? in
      var reader = Reader(bytes: raw.bindMemory(to: UInt8.self))
      return reader.batch()
    }
  }

  private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    var at = 0

    mutating func literal(_ text: StaticString) -> Bool {
      let count = text.utf8CodeUnitCount
      guard at + count <= bytes.count else { return false }
      for index in 0..<count where bytes[at + index] != text.utf8Start[index] { return false }
      at += count
      return true
    }

    mutating func integer() -> Int? {
      let start = at
      if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
      while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
      guard at > start, at - start <= 20 else { return nil }
      return Int(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self))
    }

    mutating func number() -> Double? {
      let start = at
      while at < bytes.count, "0123456789+-.eE".utf8.contains(bytes[at]) { at += 1 }
      guard at > start, at - start <= 40 else { return nil }
      return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self))
    }

    mutating func string() -> String? {
      guard literal("\"") else { return nil }
      var out: [UInt8] = []
      while at < bytes.count {
        let byte = bytes[at]
        at += 1
        switch byte {
        case UInt8(ascii: "\""):
          // Invalid UTF-8 is left to JSONDecoder, which names it.
          return String(validating: out, as: UTF8.self)
        case UInt8(ascii: "\\"):
          guard at < bytes.count else { return nil }
          let escape = bytes[at]
          at += 1
          switch escape {
          case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
          case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
          case UInt8(ascii: "n"): out.append(0x0A)
          case UInt8(ascii: "r"): out.append(0x0D)
          case UInt8(ascii: "t"): out.append(0x09)
          case UInt8(ascii: "u"):
            // Only the control characters `appendString` writes as \u00XX.
            guard at + 4 <= bytes.count, bytes[at] == UInt8(ascii: "0"), bytes[at + 1] == UInt8(ascii: "0"),
              let high = hexValue(bytes[at + 2]), let low = hexValue(bytes[at + 3]), high < 2
            else { return nil }
            out.append(high << 4 | low)
            at += 4
          default: return nil
          }
        case 0..<0x20: return nil
        default: out.append(byte)
        }
      }
      return nil
    }

    func hexValue(_ byte: UInt8) -> UInt8? {
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
      default: nil
      }
    }

    mutating func line() -> LogLine? {
      guard literal(#"{"seq":"#), let seq = integer(), literal(#","stream":"#), let streamText = string(),
        let stream = LogStream(rawValue: streamText), literal(#","time":"#), let time = number(),
        literal(#","line":"#), let text = string(), literal("}")
      else { return nil }
      return LogLine(seq: seq, stream: stream, time: time, line: text)
    }

    mutating func batch() -> LogBatchMessage? {
      guard literal(#"{"workerID":"#), let workerID = string(), literal(#","jobID":"#), let jobID = string(),
        literal(#","attempt":"#), let attempt = integer(), literal(#","lines":["#)
      else { return nil }
      var lines: [LogLine] = []
      if !literal("]") {
        repeat {
          guard let line = line() else { return nil }
          lines.append(line)
        } while literal(",")
        guard literal("]") else { return nil }
      }
      guard literal("}"), at == bytes.count else { return nil }
      return LogBatchMessage(workerID: workerID, jobID: jobID, attempt: attempt, lines: lines)
    }
  }
}
