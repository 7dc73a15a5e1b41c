import Foundation
import Subprocess

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// Runs the worker's own helper tools (nvidia-smi, pip, uv, version queries) — not job
/// commands, which go through `ShellProcess`. Each runs in a session of its own so a
/// timeout or cancellation ends everything it started.
enum ToolRunner {
  enum Outcome: Sendable {
    case finished(TerminationStatus, stdout: String, stderr: String)
    case failed(String)
    case timedOut
  }

  /// Runs to the end, or until `timeout`, collecting both outputs.
  static func capture(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Duration,
    outputLimit: Int = 4 * 1024 * 1024
  ) async -> Outcome {
    await withTaskGroup(of: Outcome?.self) { group -> Outcome in
      group.addTask {
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [
          .send(signal: .kill, toProcessGroup: true, allowedDurationToNextStep: .milliseconds(500))
        ]
        do {
          let result = try await Subprocess.run(
            .path(FilePath(executable)), arguments: Arguments(arguments),
            environment: environment.map { .custom(keys($0)) } ?? .inherit, platformOptions: options,
            output: .string(limit: outputLimit), error: .string(limit: 256 * 1024))
          return .finished(
            result.terminationStatus, stdout: result.standardOutput, stderr: result.standardError)
        } catch {
          if Task.isCancelled { return nil }
          return .failed("\(error)")
        }
      }
      group.addTask {
        try? await Task.sleep(for: timeout)
        return Task.isCancelled ? nil : .timedOut
      }
      var first: Outcome = .timedOut
      for await result in group {
        if let result {
          first = result
          break
        }
      }
      group.cancelAll()
      return first
    }
  }

  /// Runs to the end, passing every line of stdout and stderr to `log` as it comes.
  /// Cancellation stops the tool's whole group: SIGTERM, then SIGKILL after 5 s.
  static func stream(
    _ executable: String, _ arguments: [String], environment: [String: String],
    workingDirectory: String? = nil,
    log: @escaping @Sendable (String) -> Void
  ) async throws -> TerminationStatus {
    var options = PlatformOptions()
    options.createSession = true
    options.teardownSequence = [
      .gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(5))
    ]
    return try await Subprocess.run(
      .path(FilePath(executable)), arguments: Arguments(arguments), environment: .custom(keys(environment)),
      workingDirectory: workingDirectory.map { FilePath($0) }, platformOptions: options, input: .none,
      output: .sequence, error: .sequence
    ) { execution in
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          for try await line in execution.standardOutput.strings() { log(line) }
        }
        group.addTask {
          for try await line in execution.standardError.strings() { log(line) }
        }
        try await group.waitForAll()
      }
    }.terminationStatus
  }

  static func keys(_ environment: [String: String]) -> [Environment.Key: String] {
    var keys: [Environment.Key: String] = [:]
    for (name, value) in environment {
      if let key = Environment.Key(rawValue: name) { keys[key] = value }
    }
    return keys
  }
}
