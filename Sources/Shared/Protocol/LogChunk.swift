import Foundation

/// Consecutive log lines of one attempt, packed as bytes: the form a log takes from the
/// worker's pipe reader to the coordinator's log files, without a value or a JSON object
/// per line on the way. A job printing 2 million lines a second left no time for either
/// (one `LogLine` and one SQLite row per line held the whole path to about 20 MB/s).
///
/// Each line is a record: a 13-byte header (the stream, 1 byte: 0 stdout, 1 stderr,
/// 2 pinpool; the text's length in bytes, UInt32 little-endian; the time, a Float64
/// little-endian, seconds since 1970) and then the text, without its newline. The text
/// is the bytes the job printed, so it need not be UTF-8; readers decode it leniently.
/// Sequence numbers are not stored: a chunk's lines are numbered on from whatever first
/// number travels or is indexed with it.
public struct LogChunk: Sendable, Hashable {
  public static let headerSize = 13

  public private(set) var bytes: Data
  /// Lines in the chunk.
  public private(set) var count: Int

  public init() {
    bytes = Data()
    count = 0
  }

  /// Wraps bytes that claim to hold `expectedCount` records, checking every header:
  /// bytes from a peer or a file are never trusted to be well formed.
  public init(validating bytes: Data, expectedCount: Int? = nil) throws(LogChunkError) {
    let count = try bytes.withUnsafeBytes { Self.countRecords($0) }.get()
    if let expectedCount, expectedCount != count {
      throw LogChunkError(
        offset: bytes.count, problem: "holds \(count) lines, the header says \(expectedCount)")
    }
    self.bytes = bytes
    self.count = count
  }

  private static func countRecords(_ raw: UnsafeRawBufferPointer) -> Result<Int, LogChunkError> {
    var at = 0
    var count = 0
    while at < raw.count {
      guard raw.count - at >= headerSize else {
        return .failure(
          LogChunkError(offset: at, problem: "a record header needs 13 bytes, \(raw.count - at) remain"))
      }
      guard raw[at] <= 2 else {
        return .failure(
          LogChunkError(offset: at, problem: "unknown stream code \(raw[at]) (expected 0, 1 or 2)"))
      }
      let length = Int(readUInt32(raw, at + 1))
      guard Timestamp.isPlausible(Double(bitPattern: readUInt64(raw, at + 5))) else {
        return .failure(
          LogChunkError(offset: at, problem: "the time is not a plausible number of seconds since 1970"))
      }
      guard length <= raw.count - at - headerSize else {
        return .failure(
          LogChunkError(
            offset: at, problem: "the text claims \(length) bytes, \(raw.count - at - headerSize) remain"))
      }
      at += headerSize + length
      count += 1
    }
    return .success(count)
  }

  /// A chunk of lines, for tests and the few lines the worker writes itself.
  public init(_ lines: [(stream: LogStream, time: Double, text: String)]) {
    self.init()
    for line in lines { append(stream: line.stream, time: line.time, text: line.text) }
  }

  public mutating func append(stream: LogStream, time: Double, text: String) {
    var text = text
    text.withUTF8 { append(stream: stream, time: time, text: $0) }
  }

  public mutating func append(stream: LogStream, time: Double, text: UnsafeBufferPointer<UInt8>) {
    var header = Self.header(stream: stream, time: time, length: text.count)
    withUnsafeBytes(of: &header) {
      bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<Self.headerSize]))
    }
    bytes.append(text)
    count += 1
  }

  /// Appends one record to bytes being gathered elsewhere (the worker's output buffer),
  /// which become a chunk with `init(records:count:)`.
  public static func appendRecord(
    to buffer: inout [UInt8], stream: LogStream, time: Double, text: UnsafeBufferPointer<UInt8>
  ) {
    var header = Self.header(stream: stream, time: time, length: text.count)
    withUnsafeBytes(of: &header) { raw in
      buffer.append(
        contentsOf: UnsafeBufferPointer(
          start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: headerSize))
    }
    buffer.append(contentsOf: text)
  }

  /// Records written by `appendRecord`, `count` of them: trusted, not checked again.
  public init(records: some Sequence<UInt8>, count: Int) {
    self.bytes = Data(records)
    self.count = count
  }

  /// Appends another chunk's lines after these.
  public mutating func append(_ other: LogChunk) {
    bytes.append(other.bytes)
    count += other.count
  }

  /// The chunk without its first `n` lines (all of them when `n` is at least `count`).
  public func dropping(first n: Int) -> LogChunk {
    guard n > 0 else { return self }
    guard n < count else { return LogChunk() }
    let offset = bytes.withUnsafeBytes { Self.offset(afterRecords: n, in: $0) }
    var rest = LogChunk()
    rest.bytes = bytes.subdata(in: bytes.startIndex + offset..<bytes.endIndex)
    rest.count = count - n
    return rest
  }

  /// Where record `n` (from 0) starts in well-formed records: after `n` of them.
  public static func offset(afterRecords n: Int, in raw: UnsafeRawBufferPointer) -> Int {
    var at = 0
    for _ in 0..<max(0, n) { at += headerSize + Int(readUInt32(raw, at + 1)) }
    return at
  }

  /// Visits every line in order, the text as the bytes stored. Only for chunks built
  /// here or validated (`init(validating:)`), which every record header was checked in.
  public func forEach(_ body: (LogStream, Double, UnsafeRawBufferPointer) throws -> Void) rethrows {
    try bytes.withUnsafeBytes { raw in
      var at = 0
      while at + Self.headerSize <= raw.count {
        let length = Int(Self.readUInt32(raw, at + 1))
        let stream: LogStream = raw[at] == 0 ? .stdout : raw[at] == 1 ? .stderr : .pinpool
        let time = Double(bitPattern: Self.readUInt64(raw, at + 5))
        let start = at + Self.headerSize
        try body(stream, time, UnsafeRawBufferPointer(rebasing: raw[start..<start + length]))
        at = start + length
      }
    }
  }

  /// The lines as values, numbered from `firstSeq`; text that is not UTF-8 is decoded
  /// with replacement characters.
  public func lines(firstSeq: Int) -> [LogLine] {
    var result: [LogLine] = []
    result.reserveCapacity(count)
    forEach { stream, time, text in
      result.append(
        LogLine(
          seq: firstSeq + result.count, stream: stream, time: time,
          line: String(decoding: text, as: UTF8.self)))
    }
    return result
  }

  // MARK: Encoding

  /// The 13 header bytes in the first 13 bytes of a 16-byte value (one store, no
  /// per-byte appends on the hot path).
  static func header(stream: LogStream, time: Double, length: Int) -> (UInt64, UInt64) {
    let code: UInt64 =
      switch stream {
      case .stdout: 0
      case .stderr: 1
      case .pinpool: 2
      }
    let timeBits = time.bitPattern
    let low = code | UInt64(UInt32(truncatingIfNeeded: length)) << 8 | (timeBits << 40)
    let high = timeBits >> 24
    return (low.littleEndian, high.littleEndian)
  }

  static func readUInt32(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
    UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))
  }

  static func readUInt64(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
    UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
  }
}

/// A chunk whose bytes are not records: where the first bad one starts and what is wrong.
public struct LogChunkError: Error, CustomStringConvertible, Sendable, Equatable {
  public var offset: Int
  public var problem: String
  public init(offset: Int, problem: String) {
    self.offset = offset
    self.problem = problem
  }
  public var description: String { "log chunk, byte \(offset): \(problem)" }
}
