import ArgumentParser
import Foundation
import Shared

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
  /// `PINPOOL_COORDINATOR`, else the default endpoint: where clients and workers connect
  /// without `--coordinator`.
  static var defaultCoordinator: String {
    ProcessInfo.processInfo.environment["PINPOOL_COORDINATOR"] ?? "tcp://127.0.0.1:7450"
  }

  @Option(
    help: ArgumentHelp(
      "The coordinator's endpoint (or set PINPOOL_COORDINATOR).", valueName: "endpoint"))
  var coordinator: String = ClientOptions.defaultCoordinator

  @Flag(help: "Print machine-readable JSON (one object or one array).")
  var json = false

  @Option(help: ArgumentHelp("Seconds to wait for the coordinator's answer.", valueName: "seconds"))
  var replyTimeout: Double = 5

  @Option(
    help: ArgumentHelp(
      "Folder with your key pair and the coordinator's public key, for a coordinator with keys "
        + "(or set PINPOOL_KEYS).", valueName: "dir"))
  var keys: String?

  mutating func validate() throws {
    guard replyTimeout > 0, replyTimeout <= 3600 else {
      throw ValidationError("--reply-timeout \(replyTimeout): expected seconds between 0 and 3600, e.g. 5")
    }
    guard coordinator.contains("://") else {
      throw ValidationError(
        "--coordinator '\(coordinator)': expected an endpoint such as tcp://127.0.0.1:7450")
    }
  }

  func client() throws -> RequestClient {
    var peerKeys: PeerKeys?
    let folder = keys ?? ProcessInfo.processInfo.environment["PINPOOL_KEYS"].flatMap { $0.isEmpty ? nil : $0 }
    if let folder {
      do { peerKeys = try PeerKeys.load(folder) } catch { throw CLIError("--keys: \(error)") }
    }
    do {
      return try RequestClient(
        endpoint: coordinator, timeout: .milliseconds(Int(replyTimeout * 1000)), keys: peerKeys)
    } catch {
      throw CLIError(error)
    }
  }

  func request<Request: Encodable, Result: Codable & Sendable>(
    _ client: RequestClient, _ type: MessageType, _ header: Request, requestID: String, payload: [Data] = [],
    expecting: Result.Type
  ) throws -> Result {
    do {
      return try client.request(type, header, requestID: requestID, payload: payload, expecting: Result.self)
    } catch {
      throw CLIError(error)
    }
  }
}

func newRequestID() -> String { UUID().uuidString.lowercased() }

func printJSON<T: Encodable>(_ value: T) {
  print(jsonText(value))
}

/// The `--json` text of a value: pretty-printed, keys sorted, slashes unescaped.
func jsonText<T: Encodable>(_ value: T) -> String {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
  guard let data = try? encoder.encode(value) else { return "null" }
  return String(decoding: data, as: UTF8.self)
}

func printJSONLine<T: Encodable>(_ value: T) {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
  if var data = try? encoder.encode(value) {
    data.append(0x0A)
    FileHandle.standardOutput.write(data)
  }
}

/// Writes a line straight to stdout, unbuffered, so a followed log interleaves with
/// stderr in the order things happened even when stdout is a pipe.
func printLine(_ text: String) {
  FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
