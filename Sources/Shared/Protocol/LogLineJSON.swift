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
