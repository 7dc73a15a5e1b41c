import Foundation

/// The frames of one message: `[protocol+version, type, header JSON, payload...]`.
/// The header is JSON because it is small and an operator can read it in a capture;
/// bulk bytes (bundles, artifact chunks) travel as raw payload frames.
public struct WireEnvelope: Sendable {
  /// 2: `logBatch` carries its lines as a binary `LogChunk` payload (1 had them in JSON).
  /// 3: `finished` may carry the log's last lines, and its `reportAck` how far they were
  /// stored; a version 2 coordinator would ignore them and never take the result.
  /// 4: `finished` may carry the step report the worker held back (`progress`); a
  /// version 3 coordinator would leave a short job without its start and step.
  public static let protocolID = "PINPOOL/4"

  public var type: MessageType
  public var header: Data
  public var payload: [Data]

  public init(type: MessageType, header: Data, payload: [Data] = []) {
    self.type = type
    self.header = header
    self.payload = payload
  }

  public init<H: Encodable>(_ type: MessageType, _ header: H, payload: [Data] = []) {
    self.type = type
    self.header = (try? WireCoding.encoder.encode(header)) ?? Data("{}".utf8)
    self.payload = payload
  }

  public var frames: [Data] {
    [Data(Self.protocolID.utf8), Data(type.rawValue.utf8), header] + payload
  }

  /// Parses frames received from a peer. Every way a message can be wrong is a
  /// `WireError` the receiver can put into an error reply; nothing here traps.
  public init(frames: [Data]) throws(WireError) {
    guard frames.count >= 3 else { throw .tooFewFrames(frames.count) }
    guard let proto = String(data: frames[0], encoding: .utf8) else {
      throw .unknownProtocol("<\(frames[0].count) bytes of binary>")
    }
    guard proto == Self.protocolID else { throw .unknownProtocol(String(proto.prefix(40))) }
    let typeText = String(decoding: frames[1].prefix(64), as: UTF8.self)
    guard let type = MessageType(rawValue: typeText) else { throw .unknownType(typeText) }
    self.type = type
    self.header = frames[2]
    self.payload = Array(frames.dropFirst(3))
  }

  /// Decodes the header, then checks its numbers' ranges where the type says how
  /// (`WireChecked`): a value no receiver can safely use is a malformed header too.
  public func decode<H: Decodable>(_: H.Type) throws(WireError) -> H {
    let value: H
    do {
      value = try WireCoding.decoder.decode(H.self, from: header)
    } catch let error as DecodingError {
      throw .malformedHeader(type: type.rawValue, detail: WireCoding.describe(error))
    } catch {
      throw .malformedHeader(type: type.rawValue, detail: "\(error)")
    }
    if let checked = value as? any WireChecked {
      do throws(WireCheckError) { try checked.check() } catch {
        throw .malformedHeader(type: type.rawValue, detail: error.description)
      }
    }
    return value
  }
}

public enum WireError: Error, CustomStringConvertible, Sendable, Equatable {
  case tooFewFrames(Int)
  case unknownProtocol(String)
  case unknownType(String)
  case malformedHeader(type: String, detail: String)
  case missingPayload(type: String, detail: String)

  public var description: String {
    switch self {
    case .tooFewFrames(let n):
      "malformed message: \(n) frame(s), expected at least 3 (protocol, type, header)"
    case .unknownProtocol(let p):
      "unsupported protocol '\(p)': this coordinator speaks \(WireEnvelope.protocolID)"
    case .unknownType(let t): "unknown message type '\(t)' for \(WireEnvelope.protocolID)"
    case .malformedHeader(let type, let detail): "malformed '\(type)' header: \(detail)"
    case .missingPayload(let type, let detail): "malformed '\(type)' message: \(detail)"
    }
  }
}

public enum WireCoding {
  /// One of each for the process: every message is coded with them, and nothing sets
  /// their options after this (they are safe to share once configured).
  public static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.withoutEscapingSlashes]
    return e
  }()
  public static let decoder = JSONDecoder()

  static func describe(_ error: DecodingError) -> String {
    func path(_ context: DecodingError.Context) -> String {
      let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }
        .joined()
      return p.isEmpty ? "top level" : String(p.drop(while: { $0 == "." }))
    }
    switch error {
    case .keyNotFound(let key, let context):
      let at = path(context)
      return "missing field '\(key.stringValue)'" + (at == "top level" ? "" : " in \(at)")
    case .typeMismatch(let type, let context): return "\(path(context)): expected \(type)"
    case .valueNotFound(let type, let context): return "\(path(context)): expected \(type), got null"
    case .dataCorrupted(let context):
      return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context)): invalid value"
    @unknown default: return "\(error)"
    }
  }
}
