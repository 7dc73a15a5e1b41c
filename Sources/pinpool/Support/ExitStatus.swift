import ArgumentParser
import Foundation
import Shared

/// The exit statuses every command keeps to (README and `pinpool --help` list them).
enum ExitStatus: Int32, Sendable {
  /// Done; with `--follow`, the job succeeded.
  case success = 0
  /// An error (a refused request, an unknown job or worker, a broken script), or a
  /// followed job that ended other than succeeded.
  case failure = 1
  /// The command line is wrong: an unknown flag, a bad size, duration, `--arg` or id.
  case usage = 2
  /// No coordinator answered at the endpoint within `--reply-timeout`.
  case unreachable = 3
  /// Following was stopped with Ctrl-C; the job itself keeps running.
  case interrupted = 130

  /// The EXIT STATUS section of `pinpool --help`.
  static var summary: String {
    "EXIT STATUS\n"
      + [ExitStatus.success, .failure, .usage, .unreachable, .interrupted].map {
        "  \($0.rawValue)".padding(toLength: 7, withPad: " ", startingAt: 0) + $0.meaning
      }.joined(separator: "\n")
  }

  /// The status for whatever a command threw. ArgumentParser's own usage errors
  /// (EX_USAGE, 64) become 2, the usual status of a bad command line.
  static func of(_ error: any Error) -> Int32 {
    if let error = error as? CLIError { return error.status.rawValue }
    let code = Pinpool.exitCode(for: error).rawValue
    return code == ExitCode.validationFailure.rawValue ? ExitStatus.usage.rawValue : code
  }
}

/// An error the CLI prints as one line on stderr, exiting with `status`.
struct CLIError: Error, CustomStringConvertible {
  var description: String
  var status: ExitStatus
  init(_ description: String, status: ExitStatus = .failure) {
    self.description = description
    self.status = status
  }
  /// A bad command line: exits 2.
  static func usage(_ description: String) -> CLIError { CLIError(description, status: .usage) }

  /// A client error, with the status that says what kind it was.
  init(_ error: ClientError) {
    switch error {
    case .unreachable, .transport: self.init(error.description, status: .unreachable)
    case .connect(let endpoint, let detail):
      self.init(
        "--coordinator '\(endpoint)': cannot connect (\(detail)); expected an endpoint such as tcp://HOST:7450",
        status: .usage)
    case .badReply, .refused: self.init(error.description)
    }
  }
}

/// Checks a job id before anything is sent: ids are the numbers `submit` and `jobs` print.
func checkJobID(_ text: String) throws {
  guard let value = Int64(text), value > 0 else {
    throw ValidationError("'\(text)' is not a job id; job ids are numbers such as 42 (see `pinpool jobs`)")
  }
}
