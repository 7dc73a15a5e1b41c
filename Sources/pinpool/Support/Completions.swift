import ArgumentParser
import Foundation
import Shared

/// Shell completion candidates that come from the pool itself: job ids and worker
/// names. The shell runs `pinpool` to get them; with no coordinator answering within
/// a second, there are simply no candidates.
enum Completions {
  static let jobStates = CompletionKind.list(JobState.allCases.map(\.rawValue))
  static let gpuVendors = CompletionKind.list(["nvidia", "amd", "apple", "intel"])
  static let jobIDs = CompletionKind.custom { words, _, _ in jobIDCandidates(words: words) }
  static let workerNames = CompletionKind.custom { words, _, _ in workerCandidates(words: words) }

  /// The endpoint the command line names, else `PINPOOL_COORDINATOR`, else the default.
  static func endpoint(words: [String]) -> String {
    for (index, word) in words.enumerated() {
      if word == "--coordinator", index + 1 < words.count { return words[index + 1] }
      if word.hasPrefix("--coordinator=") { return String(word.dropFirst("--coordinator=".count)) }
    }
    return ClientOptions.defaultCoordinator
  }

  /// The newest jobs first, so the one just submitted is the first candidate.
  static func jobIDCandidates(words: [String]) -> [String] {
    let request = JobsRequest(requestID: newRequestID(), state: nil, worker: nil, limit: 200)
    guard let client = try? RequestClient(endpoint: endpoint(words: words), timeout: .seconds(1)),
      let views = try? client.request(
        .jobs, request, requestID: request.requestID, expecting: [JobView].self)
    else { return [] }
    return views.reversed().map(\.id)
  }

  static func workerCandidates(words: [String]) -> [String] {
    let request = WorkersRequest(requestID: newRequestID())
    guard let client = try? RequestClient(endpoint: endpoint(words: words), timeout: .seconds(1)),
      let views = try? client.request(
        .workers, request, requestID: request.requestID, expecting: [WorkerView].self)
    else { return [] }
    return views.map(\.name)
  }
}

/// A man-style `discussion`: what the command does, EXAMPLES, EXIT STATUS.
func manual(_ description: String, examples: [String], exit statuses: [ExitStatus] = ExitStatus.client)
  -> String
{
  var text = description.isEmpty ? "" : reflow(description) + "\n\n"
  text += "EXAMPLES\n" + examples.map { "  " + $0 }.joined(separator: "\n")
  text +=
    "\n\nEXIT STATUS\n"
    + statuses.map { "  \($0.rawValue)".padding(toLength: 7, withPad: " ", startingAt: 0) + $0.meaning }
    .joined(separator: "\n")
  return text
}

/// Joins the lines of each paragraph, so `--help` wraps them to the screen instead of
/// keeping the line breaks of the source.
func reflow(_ text: String) -> String {
  text.components(separatedBy: "\n\n").map {
    $0.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
  }.joined(separator: "\n\n")
}

extension ExitStatus {
  static let client: [ExitStatus] = [.success, .failure, .usage, .unreachable]
  static let follow: [ExitStatus] = [.success, .failure, .usage, .unreachable, .interrupted]

  var meaning: String {
    switch self {
    case .success: "success"
    case .failure: "an error (one line on stderr), or a followed job that did not succeed"
    case .usage: "bad command line: unknown flag, bad size, duration, key=value or id"
    case .unreachable: "the coordinator did not answer within --reply-timeout"
    case .interrupted: "Ctrl-C stopped following; the job keeps running"
    }
  }
}
