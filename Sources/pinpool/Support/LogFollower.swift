import Foundation
import Shared

/// Streams a job's log until the job is final and its log complete. It polls with a
/// cursor, so it survives a coordinator restart: a failed poll is retried until the
/// coordinator answers again.
struct LogFollower {
  var client: ClientOptions
  var connection: RequestClient
  var jobID: String
  var since: Int

  func run() throws -> JobView {
    var cursor = since
    var failures = 0
    var connection = self.connection
    while true {
      let request = LogsRequest(requestID: newRequestID(), jobID: jobID, since: cursor, limit: 5000)
      let reply: LogsReply
      do {
        reply = try connection.request(
          .logs, request, requestID: request.requestID, expecting: LogsReply.self)
        failures = 0
      } catch ClientError.refused(let message) {
        throw CLIError(message)
      } catch {
        failures += 1
        if failures == 1 {
          FileHandle.standardError.write(Data("pinpool: \(error); still trying\n".utf8))
        }
        // A fresh socket after a coordinator restart avoids waiting on a dead route.
        if let fresh = try? client.client() { connection = fresh }
        Thread.sleep(forTimeInterval: 0.5)
        continue
      }
      for line in reply.lines {
        if client.json {
          printJSONLine(line)
        } else {
          printLine(line.line)
        }
        cursor = line.seq
      }
      if reply.complete && reply.lines.isEmpty {
        let status = JobRequest(requestID: newRequestID(), jobID: jobID)
        let view = try client.request(
          connection, .status, status, requestID: status.requestID, expecting: JobView.self)
        if !client.json {
          var summary = "job \(view.id) \(view.state.rawValue)"
          if let error = view.error, view.state != .succeeded { summary += ": \(error)" }
          FileHandle.standardError.write(Data((summary + "\n").utf8))
        }
        return view
      }
      if reply.lines.isEmpty { Thread.sleep(forTimeInterval: 0.2) }
    }
  }
}
