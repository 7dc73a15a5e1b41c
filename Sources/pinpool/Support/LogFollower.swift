import Dispatch
import Foundation
import Shared

/// Streams a job's log until the job is final and its log complete. It polls with a
/// cursor, so it survives a coordinator restart: once the coordinator has answered, a
/// failed poll is retried until it answers again (a coordinator that never answered
/// is an error within `--reply-timeout`).
///
/// The log goes to stdout, exactly as stored. On a terminal, stderr carries a status
/// line redrawn in place (state, step n/m and its label, worker, elapsed time), erased
/// before each log line; the last line says how the job ended. Ctrl-C stops following
/// and says that the job keeps running.
struct LogFollower {
  var client: ClientOptions
  var connection: RequestClient
  var jobID: String
  var since: Int

  /// How often the status line asks for the job's state and step.
  static let statusInterval = 1.0

  func run() throws -> JobView {
    let style = OutputStyle.detect(fd: STDERR_FILENO)
    let live = !client.json && Terminal.isTerminal(STDERR_FILENO)
    let interrupt = FollowInterrupt(jobID: jobID, live: live)
    defer { interrupt.cancel() }

    var cursor = since
    var failures = 0
    var answered = false
    var connection = self.connection
    var view: JobView?
    var lastStatus = -Double.infinity
    var drawn = ""

    func draw(_ line: String) {
      guard live, line != drawn else { return }
      printError(Terminal.clearLine + line, newline: false)
      drawn = line
    }
    func erase() {
      guard live, !drawn.isEmpty else { return }
      printError(Terminal.clearLine, newline: false)
      drawn = ""
    }

    while true {
      let request = LogsRequest(requestID: newRequestID(), jobID: jobID, since: cursor, limit: 5000)
      let reply: LogsReply
      do throws(ClientError) {
        reply = try connection.request(
          .logs, request, requestID: request.requestID, expecting: LogsReply.self)
        answered = true
        failures = 0
      } catch {
        // Only a coordinator that answered before is waited for (across its restart).
        switch error {
        case .unreachable, .transport: if !answered { throw CLIError(error) }
        default: throw CLIError(error)
        }
        failures += 1
        if failures == 1 {
          erase()
          printError("pinpool: \(error); still trying (Ctrl-C stops following)")
        }
        // A fresh socket after a coordinator restart avoids waiting on a dead route.
        if let fresh = try? client.client() { connection = fresh }
        Thread.sleep(forTimeInterval: 0.5)
        continue
      }
      if !reply.lines.isEmpty { erase() }
      for line in reply.lines {
        if client.json { printJSONLine(line) } else { printLine(line.line) }
        cursor = line.seq
      }
      if reply.complete && reply.lines.isEmpty {
        let final = try status(connection)
        erase()
        if !client.json { printError(Render.finalLine(final, style: style)) }
        return final
      }
      if live {
        let now = Timestamp.now()
        if now - lastStatus >= Self.statusInterval {
          view = (try? status(connection)) ?? view
          lastStatus = now
        }
        if let view { draw(Render.followLine(view, now: now, style: style)) }
      }
      if reply.lines.isEmpty { Thread.sleep(forTimeInterval: 0.2) }
    }
  }

  private func status(_ connection: RequestClient) throws -> JobView {
    let request = JobRequest(requestID: newRequestID(), jobID: jobID)
    return try client.request(
      connection, .status, request, requestID: request.requestID, expecting: JobView.self)
  }
}

/// While a job is followed, Ctrl-C stops following, not the job: it erases the status
/// line, says how to cancel the job, and exits 130.
final class FollowInterrupt: @unchecked Sendable {
  private let source: any DispatchSourceSignal

  init(jobID: String, live: Bool) {
    signal(SIGINT, SIG_IGN)
    source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    source.setEventHandler {
      printError(
        (live ? Terminal.clearLine : "")
          + "stopped following; job \(jobID) keeps running (pinpool cancel \(jobID) to stop it)")
      fflush(nil)
      _exit(ExitStatus.interrupted.rawValue)
    }
    source.resume()
  }

  func cancel() {
    source.cancel()
    signal(SIGINT, SIG_DFL)
  }
}
