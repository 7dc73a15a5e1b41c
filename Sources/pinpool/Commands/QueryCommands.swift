import ArgumentParser
import Foundation
import Shared

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Show one job: state, worker, step, why it waits, cleanup.",
    discussion: "Example: pinpool status 42 --json")
  @Argument(help: "The job id.") var job: String
  @OptionGroup var client: ClientOptions

  func run() throws {
    let connection = try client.client()
    let request = JobRequest(requestID: newRequestID(), jobID: job)
    let view = try client.request(
      connection, .status, request, requestID: request.requestID, expecting: JobView.self)
    if client.json { return printJSON(view) }
    var lines = [
      "job \(view.id)  \(view.name)",
      "state     \(view.state.rawValue)" + (view.attempt > 1 ? " (attempt \(view.attempt))" : ""),
    ]
    if let reason = view.waitReason { lines.append("waiting   \(reason)") }
    if let worker = view.worker {
      lines.append(
        "worker    \(worker)"
          + (view.gpus.isEmpty ? "" : " (GPU \(view.gpus.map(String.init).joined(separator: ",")))"))
    }
    if view.step.count > 0 { lines.append("step      \(view.step.index)/\(view.step.count)") }
    if let code = view.exitCode { lines.append("exit code \(code)") }
    if let error = view.error { lines.append("error     \(error)") }
    if case .object(let locals) = view.locals, !locals.isEmpty {
      for (key, value) in locals { lines.append("local     \(key) = \(value.interpolationText)") }
    }
    for note in view.notifications { lines.append("notified  \(note)") }
    for tool in view.environment?["runtime"]?["tools"]?.arrayValue ?? [] {
      if let name = tool["name"]?.stringValue {
        lines.append("runtime   \(name) \(tool["version"]?.stringValue ?? "?")")
      }
    }
    for venv in view.environment?["venvs"]?.arrayValue ?? [] {
      let packages = venv["packages"]?.arrayValue?.count ?? 0
      lines.append(
        "venv      \(venv["path"]?.stringValue ?? "?"): Python \(venv["python"]?.stringValue ?? "?"), "
          + "\(packages) package\(packages == 1 ? "" : "s") (status --json lists them)")
    }
    if view.cleanup.state != .none {
      var text = "cleanup   \(view.cleanup.state.rawValue)"
      if let freed = view.cleanup.bytesFreed { text += ", \(ByteSize(bytes: freed)) freed" }
      if let reason = view.cleanup.reason { text += " (\(reason))" }
      lines.append(text)
    }
    lines.append("submitted \(view.submittedAt)")
    if let started = view.startedAt { lines.append("started   \(started)") }
    if let finished = view.finishedAt { lines.append("finished  \(finished)") }
    print(lines.joined(separator: "\n"))
  }
}

struct JobsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs", abstract: "List jobs, newest last.",
    discussion:
      "Examples:\n  pinpool jobs\n  pinpool jobs --state queued\n  pinpool jobs --worker edge-3 --json")
  @Option(help: "Only jobs in this state (queued, assigned, running, serving, succeeded, failed, cancelled).")
  var state: String?
  @Option(help: "Only jobs on this worker (name or id).") var worker: String?
  @Option(help: "Only the jobs of this array (the id `submit --array` printed first).") var array: String?
  @Option(help: "At most this many (the newest).") var limit: Int = 200
  @OptionGroup var client: ClientOptions

  func run() throws {
    var jobState: JobState?
    if let state {
      guard let parsed = JobState(rawValue: state) else {
        throw CLIError(
          "--state '\(state)': expected one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      jobState = parsed
    }
    let connection = try client.client()
    var request = JobsRequest(requestID: newRequestID(), state: jobState, worker: worker, limit: limit)
    request.array = array
    let views = try client.request(
      connection, .jobs, request, requestID: request.requestID, expecting: [JobView].self)
    if client.json { return printJSON(views) }
    let now = Timestamp.now()
    var table = Table(header: ["ID", "NAME", "STATE", "WORKER", "GPUS", "STEP", "AGE"])
    for view in views {
      table.rows.append([
        view.id, view.name, view.state.rawValue, view.worker ?? "-",
        view.gpus.isEmpty ? "-" : view.gpus.map(String.init).joined(separator: ","),
        view.step.count > 0 ? "\(view.step.index)/\(view.step.count)" : "-",
        parseISO(view.submittedAt).map { age(since: $0, now: now) } ?? "-",
      ])
    }
    print(table.render())
  }
}

struct LogsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "logs", abstract: "Print a job's log.",
    discussion:
      "Examples:\n  pinpool logs 42\n  pinpool logs 42 --follow\n  pinpool logs 42 --since 1200 --json")
  @Argument(help: "The job id.") var job: String
  @Flag(help: "Keep streaming until the job ends.") var follow = false
  @Option(help: "Only lines after this sequence number.") var since: Int = 0
  @OptionGroup var client: ClientOptions

  func run() throws {
    let connection = try client.client()
    if follow {
      _ = try LogFollower(client: client, connection: connection, jobID: job, since: since).run()
      return
    }
    var cursor = since
    while true {
      let request = LogsRequest(requestID: newRequestID(), jobID: job, since: cursor, limit: 5000)
      let reply = try client.request(
        connection, .logs, request, requestID: request.requestID, expecting: LogsReply.self)
      for line in reply.lines {
        if client.json { printJSONLine(line) } else { printLine(line.line) }
        cursor = line.seq
      }
      if reply.lines.count < 5000 { return }
    }
  }
}

struct CancelCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cancel", abstract: "Cancel queued, running or serving jobs.",
    discussion: "Examples:\n  pinpool cancel 42 43\n  pinpool cancel --array 17     (every job of the array)")
  @Argument(help: "Job ids.") var jobs: [String] = []
  @Option(help: "Cancel every job of this array.") var array: String?
  @OptionGroup var client: ClientOptions

  func run() throws {
    guard !jobs.isEmpty || array != nil else { throw CLIError("name at least one job id, or --array ID") }
    let connection = try client.client()
    var request = CancelRequest(requestID: newRequestID(), jobIDs: jobs)
    request.array = array
    let reply = try client.request(
      connection, .cancel, request, requestID: request.requestID, expecting: CancelReply.self)
    if client.json { return printJSON(reply) }
    for id in reply.cancelled { print("cancelling job \(id)") }
    for id in reply.alreadyFinal { print("job \(id) had already finished") }
  }
}

struct WorkersCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "workers", abstract: "List the pool's workers and what they have free.")
  @OptionGroup var client: ClientOptions

  func run() throws {
    let connection = try client.client()
    let request = WorkersRequest(requestID: newRequestID())
    let views = try client.request(
      connection, .workers, request, requestID: request.requestID, expecting: [WorkerView].self)
    if client.json { return printJSON(views) }
    let now = Timestamp.now()
    var table = Table(header: ["NAME", "STATE", "GPUS", "DISK FREE", "RUNNING", "LAST SEEN"])
    for view in views {
      let gpus =
        view.gpus.isEmpty
        ? "-"
        : view.gpus.map {
          "\($0.model) \(ByteSize(bytes: $0.vramFree).decimalDescription)/\(ByteSize(bytes: $0.vramTotal).decimalDescription)"
        }.joined(separator: ", ")
      table.rows.append([
        view.name, view.state.rawValue, gpus, ByteSize(bytes: view.diskFree).description,
        "\(view.running)/\(view.slots)",
        parseISO(view.lastSeen).map { age(since: $0, now: now) + " ago" } ?? "-",
      ])
    }
    print(table.render())
  }
}

struct DrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drain", abstract: "Let a worker finish its jobs and take no new ones.",
    discussion: "Example: pinpool drain edge-3")
  @Argument(help: "The worker's name or id.") var worker: String
  @OptionGroup var client: ClientOptions

  func run() throws { try setDrained(worker: worker, drained: true, client: client) }
}

struct UndrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "undrain", abstract: "Let a drained worker take jobs again.")
  @Argument(help: "The worker's name or id.") var worker: String
  @OptionGroup var client: ClientOptions

  func run() throws { try setDrained(worker: worker, drained: false, client: client) }
}

private func setDrained(worker: String, drained: Bool, client: ClientOptions) throws {
  let connection = try client.client()
  let request = DrainRequest(requestID: newRequestID(), worker: worker)
  let view = try client.request(
    connection, drained ? .drain : .undrain, request, requestID: request.requestID, expecting: WorkerView.self
  )
  if client.json { return printJSON(view) }
  print("\(view.name) is \(view.state.rawValue)")
}
