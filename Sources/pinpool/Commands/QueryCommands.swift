import ArgumentParser
import Foundation
import Shared

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Show one job: state, worker, steps, why it waits, locals, cleanup.",
    discussion: manual(
      """
      A short block: the job's state and attempt, its worker and GPUs, the step timeline
      (steps done, the current one, those to come), why a queued job waits, the locals a
      script set (the URL of a serving app, say), its notifications, what cleanup freed,
      and when it was submitted, started and finished. --json prints the fixed shape.
      """,
      examples: ["pinpool status 42", "pinpool status 42 --json | jq .state"]))
  @Argument(help: "The job id.", completion: Completions.jobIDs) var job: String
  @OptionGroup var client: ClientOptions

  func validate() throws { try checkJobID(job) }

  func run() throws {
    let connection = try client.client()
    let request = JobRequest(requestID: newRequestID(), jobID: job)
    let view = try client.request(
      connection, .status, request, requestID: request.requestID, expecting: JobView.self)
    if client.json { return printJSON(view) }
    print(Render.status(view, now: Timestamp.now(), style: .detect(fd: STDOUT_FILENO)))
  }
}

struct JobsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs", abstract: "List jobs, newest last.",
    discussion: manual(
      """
      A table: id, name, state, worker, GPUs (held, or wanted while queued), the current
      step n/m, and age since submission.
      """,
      examples: [
        "pinpool jobs", "pinpool jobs --state queued", "pinpool jobs --worker edge-3 --json",
        "pinpool jobs --array 17",
      ]))
  @Option(
    help: "Only jobs in this state (queued, assigned, running, serving, succeeded, failed, cancelled, lost).",
    completion: Completions.jobStates)
  var state: String?
  @Option(help: "Only jobs on this worker (name or id).", completion: Completions.workerNames) var worker:
    String?
  @Option(help: "Only the jobs of this array (the id `submit --array` printed first).") var array: String?
  @Option(help: "At most this many (the newest).") var limit: Int = 200
  @OptionGroup var client: ClientOptions

  func validate() throws {
    if let state, JobState(rawValue: state) == nil {
      throw ValidationError(
        "--state '\(state)': expected one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    if let array { try checkJobID(array) }
    guard limit > 0 else { throw ValidationError("--limit \(limit): expected 1 or more") }
  }

  func run() throws {
    let connection = try client.client()
    var request = JobsRequest(
      requestID: newRequestID(), state: state.flatMap(JobState.init(rawValue:)), worker: worker, limit: limit)
    request.array = array
    let views = try client.request(
      connection, .jobs, request, requestID: request.requestID, expecting: [JobView].self)
    if client.json { return printJSON(views) }
    print(Render.jobs(views, now: Timestamp.now(), style: .detect(fd: STDOUT_FILENO)))
  }
}

struct LogsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "logs", abstract: "Print a job's log, or follow it live.",
    discussion: manual(
      """
      Prints the stored log lines. With --follow, keeps streaming until the job ends; on a
      terminal a status line shows the current step and the elapsed time, and the last
      line says how the job ended. Ctrl-C stops following; the job keeps running.
      --json prints one object per line: {"seq", "stream", "time", "line"}.
      """,
      examples: ["pinpool logs 42", "pinpool logs 42 --follow", "pinpool logs 42 --since 1200 --json"],
      exit: ExitStatus.follow))
  @Argument(help: "The job id.", completion: Completions.jobIDs) var job: String
  @Flag(help: "Keep streaming until the job ends; exit 0 only if it succeeded.") var follow = false
  @Option(help: "Only lines after this sequence number.") var since: Int = 0
  @OptionGroup var client: ClientOptions

  func validate() throws {
    try checkJobID(job)
    guard since >= 0 else { throw ValidationError("--since \(since): expected a sequence number, 0 or more") }
  }

  func run() throws {
    let connection = try client.client()
    if follow {
      let final = try LogFollower(client: client, connection: connection, jobID: job, since: since).run()
      if final.state != .succeeded { throw ExitCode(ExitStatus.failure.rawValue) }
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
    discussion: manual(
      "The worker stops the job's processes (SIGTERM to the group, then SIGKILL) and cleans up.",
      examples: [
        "pinpool cancel 42", "pinpool cancel 42 43", "pinpool cancel --array 17    (every job of the array)",
      ]
    ))
  @Argument(help: "Job ids.", completion: Completions.jobIDs) var jobs: [String] = []
  @Option(help: "Cancel every job of this array.") var array: String?
  @OptionGroup var client: ClientOptions

  func validate() throws {
    guard !jobs.isEmpty || array != nil else {
      throw ValidationError("name at least one job id, or --array ID")
    }
    for job in jobs { try checkJobID(job) }
    if let array { try checkJobID(array) }
  }

  func run() throws {
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
    commandName: "workers", abstract: "List the pool's workers and what they have free.",
    discussion: manual(
      """
      A table: name, state (online, draining, drained, offline), each GPU with its free and
      total VRAM, free disk, running jobs out of slots, and when the worker was last heard from.
      """,
      examples: [
        "pinpool workers", "pinpool workers --json | jq '.[] | select(.state == \"online\") | .name'",
      ]))
  @OptionGroup var client: ClientOptions

  func run() throws {
    let connection = try client.client()
    let request = WorkersRequest(requestID: newRequestID())
    let views = try client.request(
      connection, .workers, request, requestID: request.requestID, expecting: [WorkerView].self)
    if client.json { return printJSON(views) }
    print(Render.workers(views, now: Timestamp.now(), style: .detect(fd: STDOUT_FILENO)))
  }
}

struct DrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drain", abstract: "Let a worker finish its jobs and take no new ones.",
    discussion: manual(
      "The worker shows as draining until its running jobs end, then drained. `pinpool undrain` reverses it.",
      examples: ["pinpool drain edge-3", "pinpool drain edge-3 --json"]))
  @Argument(help: "The worker's name or id.", completion: Completions.workerNames) var worker: String
  @OptionGroup var client: ClientOptions

  func run() throws { try setDrained(worker: worker, drained: true, client: client) }
}

struct UndrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "undrain", abstract: "Let a drained worker take jobs again.",
    discussion: manual("", examples: ["pinpool undrain edge-3"]))
  @Argument(help: "The worker's name or id.", completion: Completions.workerNames) var worker: String
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
