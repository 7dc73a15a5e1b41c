import ArgumentParser
import Foundation
import Shared
import Testing

@testable import pinpool

/// Bad command lines get specific messages and exit 2, before anything is sent.
@Suite struct ArgumentTests {
  /// Parses like `main` does and returns (exit status, message) for a failure.
  func failure(_ arguments: [String]) -> (Int32, String)? {
    do {
      _ = try Pinpool.parseAsRoot(arguments)
      return nil
    } catch {
      return (ExitStatus.of(error), Pinpool.fullMessage(for: error))
    }
  }

  func expectUsage(
    _ arguments: [String], _ message: String, sourceLocation: Testing.SourceLocation = #_sourceLocation
  ) {
    guard let (status, text) = failure(arguments) else {
      Issue.record("`pinpool \(arguments.joined(separator: " "))` parsed", sourceLocation: sourceLocation)
      return
    }
    #expect(status == 2, "\(text)", sourceLocation: sourceLocation)
    #expect(text.contains(message), "\(text)", sourceLocation: sourceLocation)
  }

  @Test func unknownFlags() {
    expectUsage(["jobs", "--stat", "queued"], "Unknown option '--stat'")
    expectUsage(["submit", "job.json", "--gpu", "1"], "Unknown option '--gpu'")
    expectUsage(["frobnicate"], "Unexpected argument 'frobnicate'")
  }

  @Test func badSizes() {
    expectUsage(["submit", "job.json", "--vram", "lots"], "--vram: invalid size 'lots'")
    expectUsage(["submit", "job.json", "--disk", "12XB"], "--disk: invalid size '12XB'")
    expectUsage(["submit", "job.json", "--memory=-4GB"], "--memory: invalid size '-4GB'")
  }

  @Test func badKeyValues() {
    expectUsage(["submit", "job.json", "--arg", "novalue"], "--arg 'novalue': expected key=value")
    expectUsage(["submit", "job.json", "--arg", "=x"], "--arg '=x': expected key=value")
    expectUsage(["submit", "job.json", "--label", "site"], "--label 'site': expected key=value")
  }

  @Test func badDurationsSpecsAndNumbers() {
    expectUsage(["submit", "job.json", "--timeout", "soon"], "--timeout: 'soon'")
    expectUsage(["submit", "job.json", "--array", "5-1"], "--array: '5-1': the range runs backwards")
    expectUsage(["submit", "job.json", "--gpus=-1"], "--gpus -1: expected 0 or more")
    expectUsage(["submit", "job.json", "--gpu-vendor", "voodoo"], "--gpu-vendor 'voodoo'")
    expectUsage(["submit", "job.json", "--compute-capability", "eight"], "expected a version such as 8.0")
    expectUsage(["submit", "job.json", "--retries=-2"], "--retries -2: expected 0 or more")
  }

  @Test func badJobIDsAndStates() {
    expectUsage(["status", "abc"], "'abc' is not a job id")
    expectUsage(["logs", "0"], "'0' is not a job id")
    expectUsage(["cancel", "42", "x"], "'x' is not a job id")
    expectUsage(["cancel"], "name at least one job id, or --array ID")
    expectUsage(["jobs", "--state", "done"], "--state 'done': expected one of queued, assigned")
    expectUsage(["jobs", "--limit", "0"], "--limit 0: expected 1 or more")
    expectUsage(["logs", "4", "--since=-1"], "--since -1: expected a sequence number")
  }

  @Test func badCoordinatorOptions() {
    expectUsage(["jobs", "--coordinator", "localhost"], "expected an endpoint such as tcp://127.0.0.1:7450")
    expectUsage(["jobs", "--reply-timeout", "0"], "--reply-timeout")
  }

  @Test func goodCommandLinesParse() throws {
    #expect(
      failure(["submit", "job.json", "--vram", "24GB", "--arg", "prompt=a cat", "--array", "1-4"]) == nil)
    #expect(failure(["status", "42", "--json"]) == nil)
    #expect(failure(["jobs", "--state", "running", "--worker", "edge-3"]) == nil)
    #expect(failure(["logs", "42", "--follow", "--since", "10"]) == nil)
  }

  @Test func errorsFromRunKeepTheirStatus() {
    #expect(ExitStatus.of(CLIError("no job '9'")) == 1)
    #expect(ExitStatus.of(CLIError(.unreachable(endpoint: "tcp://x:1", seconds: 5, secured: false))) == 3)
    #expect(ExitStatus.of(CLIError(.refused("no job '9'"))) == 1)
    #expect(ExitStatus.of(ExitCode(1)) == 1)
    #expect(ExitStatus.of(ValidationError("bad")) == 2)
  }

  @Test func everyCommandHasExamplesAndExitStatusInItsHelp() {
    for command in Pinpool.configuration.subcommands {
      let help = command.helpMessage(columns: 120)
      #expect(help.contains("EXAMPLES"), "\(command._commandName) --help lacks examples")
      #expect(help.contains("EXIT STATUS"), "\(command._commandName) --help lacks exit statuses")
    }
    #expect(Pinpool.helpMessage(columns: 120).contains("130"))
  }

  @Test func completionScriptsListCommandsFlagsAndDynamicIDs() {
    for shell in [CompletionShell.bash, .zsh, .fish] {
      let script = Pinpool.completionScript(for: shell)
      for word in ["submit", "status", "workers", "coordinator", "follow", "vram", "reply-timeout"] {
        #expect(script.contains(word), "\(shell) completions lack \(word)")
      }
      // Job ids and worker names come from the pool, through `pinpool ---completion`.
      #expect(script.contains("---completion"), "\(shell) completions have no dynamic candidates")
    }
  }

  @Test func completionEndpointComesFromTheCommandLine() {
    #expect(
      Completions.endpoint(words: ["pinpool", "status", "--coordinator", "tcp://h:1", ""]) == "tcp://h:1")
    #expect(Completions.endpoint(words: ["pinpool", "status", "--coordinator=tcp://h:2"]) == "tcp://h:2")
    // Nothing answers on a closed port: no candidates, quickly.
    let start = Date()
    #expect(Completions.jobIDCandidates(words: ["pinpool", "--coordinator", "tcp://127.0.0.1:9"]).isEmpty)
    #expect(Date().timeIntervalSince(start) < 5)
  }
}
