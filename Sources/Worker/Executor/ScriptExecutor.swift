import Foundation
import Shared

/// Everything a job's scripts run with, fixed when the job starts.
public struct ExecutionContext: Sendable {
  public var job: AssignedJob
  public var workspace: Workspace
  public var workerRoot: String
  public var host: HostInfo
  /// The machine's GPUs (what `gpu` and `kernel.gpu_model` describe).
  public var machineGPUs: [GPU]
  /// The job's base environment, built from the allowlist.
  public var environment: [String: String]
  public var runtimeBin: [String]
  public var shellOptions: ShellOptions
  /// The private runtime's tools and versions, for the job's reproducibility record.
  public var runtimeTools: JSONValue = .null

  public init(
    job: AssignedJob, workspace: Workspace, workerRoot: String, host: HostInfo, machineGPUs: [GPU],
    environment: [String: String], runtimeBin: [String], shellOptions: ShellOptions
  ) {
    self.job = job
    self.workspace = workspace
    self.workerRoot = workerRoot
    self.host = host
    self.machineGPUs = machineGPUs
    self.environment = environment
    self.runtimeBin = runtimeBin
    self.shellOptions = shellOptions
  }
}

/// Where the executor reports what happens; the worker agent forwards it to the
/// coordinator. Called from any task.
public struct JobEvents: Sendable {
  public var log: @Sendable (LogStream, String) -> Void
  /// A line of a process's output, called on the thread that reads the process's pipes
  /// (never on the concurrency pool), so it may block: that is how a job printing faster
  /// than its log can be delivered is slowed down instead of buffered without bound.
  public var processOutput: @Sendable (LogStream, ShellLine) -> Void
  public var progress:
    @Sendable (_ state: JobState, _ stepIndex: Int, _ stepCount: Int, _ locals: JSONValue?) -> Void
  public var notify: @Sendable (String) -> Void

  public init(
    log: @escaping @Sendable (LogStream, String) -> Void,
    processOutput: (@Sendable (LogStream, ShellLine) -> Void)? = nil,
    progress: @escaping @Sendable (JobState, Int, Int, JSONValue?) -> Void,
    notify: @escaping @Sendable (String) -> Void
  ) {
    self.log = log
    self.processOutput = processOutput ?? { log($0, $1.text) }
    self.progress = progress
    self.notify = notify
  }
}

public struct JobOutcome: Sendable {
  public var state: JobState
  public var exitCode: Int32?
  public var error: String?
  public var locals: JSONValue
  /// What the job ran with: runtime tool versions, each venv's Python and packages.
  public var environment: JSONValue? = nil
}

/// A step that failed: the job's error names the file, the 1-based step and the cause.
struct StepFailure: Error, CustomStringConvertible {
  var file: String
  var step: Int?
  var method: String?
  var message: String
  var exitCode: Int32?

  var description: String {
    var text = file
    if let step { text += " step \(step)" }
    if let method { text += " (\(method))" }
    return text + ": " + message
  }
}

/// Runs a job's entry script, step by step, the way Pinokio does: `when` skips a
/// step, `next` and `jump` move elsewhere, each step's result is the next one's
/// `input`, and the first failure ends the job.
public final class ScriptExecutor: @unchecked Sendable {
  // Confined to the job's task: created and used only inside `run()`.
  let context: ExecutionContext
  let events: JobEvents
  var locals = JSONObject()
  var detached: [DetachedProcess] = []
  var depth = 0
  /// Top-level progress, reported as the entry script's steps advance.
  var stepCount = 0
  /// Every venv a step used, for the reproducibility record.
  var venvs: [String] = []

  public init(context: ExecutionContext, events: JobEvents) {
    self.context = context
    self.events = events
  }

  public func run() async -> JobOutcome {
    var outcome = await execute()
    outcome.environment = await EnvironmentRecord.describe(
      venvs: venvs, workspace: context.workspace.root, runtimeTools: context.runtimeTools,
      runtimeBin: context.runtimeBin, environment: context.environment)
    return outcome
  }

  private func execute() async -> JobOutcome {
    let outcome = await runEntry()
    // Whatever the script left running in the background (servers started with a
    // `done` handler) ends with the job.
    await stopDetached()
    return outcome
  }

  private func runEntry() async -> JobOutcome {
    do {
      let script = try loadScript(context.job.entry)
      stepCount = script.steps.count
      // No report of "step 0": the first step to run reports the job running a moment
      // later. On short jobs that report was a message, a write to the coordinator's
      // store and two thread hops that no one would ever see.
      _ = try await runScript(script, args: context.job.args, input: context.job.args, topLevel: true)
      if script.daemon {
        events.progress(.serving, stepCount, stepCount, .object(locals))
        events.log(.pinpool, "daemon script is ready; serving until cancelled")
        // Serve until the job is cancelled; the detached processes are the app.
        while !Task.isCancelled {
          try? await Task.sleep(for: .seconds(3600))
        }
        return JobOutcome(
          state: .cancelled, exitCode: nil, error: "cancelled while serving", locals: .object(locals))
      }
      return JobOutcome(state: .succeeded, exitCode: 0, error: nil, locals: .object(locals))
    } catch is CancellationError {
      return JobOutcome(state: .cancelled, exitCode: nil, error: "cancelled", locals: .object(locals))
    } catch let failure as StepFailure {
      if Task.isCancelled {
        return JobOutcome(state: .cancelled, exitCode: nil, error: "cancelled", locals: .object(locals))
      }
      events.log(.pinpool, "error: \(failure.description)")
      return JobOutcome(
        state: .failed, exitCode: failure.exitCode, error: failure.description, locals: .object(locals))
    } catch {
      let message = "\(error)"
      events.log(.pinpool, "error: \(message)")
      return JobOutcome(state: .failed, exitCode: nil, error: message, locals: .object(locals))
    }
  }

  func stopDetached() async {
    let processes = detached
    detached.removeAll()
    for process in processes { _ = await process.terminate(grace: context.shellOptions.terminationGrace) }
  }

  /// Loads a bundle script by its workspace-relative path, confined to the workspace.
  func loadScript(_ relativePath: String, from base: String? = nil) throws -> Script {
    let path: String
    do {
      path = try context.workspace.confinement.resolve(relativePath, relativeTo: base)
    } catch {
      throw StepFailure(file: relativePath, step: nil, method: nil, message: error.description)
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw StepFailure(file: relativePath, step: nil, method: nil, message: "cannot read the script")
    }
    let display = String(path.dropFirst(context.workspace.root.count + 1))
    let key = ParsedScripts.Key(file: display, bytes: data)
    if let known = ParsedScripts.shared[key] { return known }
    guard let text = String(data: data, encoding: .utf8) else {
      throw StepFailure(file: relativePath, step: nil, method: nil, message: "cannot read the script")
    }
    let script: Script
    do {
      script = try Script.load(text: text, file: display)
    } catch {
      throw StepFailure(file: display, step: nil, method: nil, message: error.description)
    }
    // Every static mistake is reported before the script's first step runs.
    let problems = ScriptValidator.problems(in: script)
    guard problems.isEmpty else {
      throw StepFailure(file: display, step: nil, method: nil, message: problems.joined(separator: "; "))
    }
    ParsedScripts.shared.keep(script, for: key)
    return script
  }

  /// Runs one script to its end and returns what it `script.return`ed, if anything.
  func runScript(_ script: Script, args: JSONValue, input: JSONValue, topLevel: Bool) async throws
    -> JSONValue?
  {
    depth += 1
    defer { depth -= 1 }
    guard depth <= 32 else {
      throw StepFailure(
        file: script.file, step: nil, method: nil, message: "script.start nested more than 32 deep")
    }
    let folder = (context.workspace.root as NSString).appendingPathComponent(
      (script.file as NSString).deletingLastPathComponent)
    var input = input
    var index = 0
    var executed = 0
    while index < script.steps.count {
      try Task.checkCancellation()
      executed += 1
      if executed > 100_000 {
        throw StepFailure(
          file: script.file, step: index + 1, method: nil,
          message: "more than 100,000 steps run; a jump loop?")
      }
      let step = script.steps[index]
      // A free port costs a socket, and `env` an object of the job's thirty-odd variables
      // built in order: only a step that mentions them gets them. (A template names a
      // variable only by its identifier: there is no `this` to reach one by a computed name.)
      let text = step.params.serialized() + (step.when?.serialized() ?? "")
      let scope = makeScope(
        script: script, args: args, input: input, cwd: folder, port: text.contains("port"),
        env: text.contains("env"))
      let fail = { (message: String, exit: Int32?) in
        StepFailure(file: script.file, step: index + 1, method: step.method, message: message, exitCode: exit)
      }
      if let when = step.when {
        let run: Bool
        do { run = try Template.condition(when, scope: scope) } catch {
          throw fail("in \"when\": \(error)", nil)
        }
        if !run {
          index += 1
          continue
        }
      }
      if topLevel { events.progress(.running, index + 1, script.steps.count, .object(locals)) }
      // A header per step, not the command itself: commands often carry secrets
      // and words a log search should only find in real output.
      events.log(.pinpool, "[\(script.file) step \(index + 1)/\(script.steps.count)] \(step.method)")
      let params: JSONValue
      do {
        params = try Template.render(step.params, scope: scope) ?? .object(JSONObject())
      } catch {
        throw fail("in \"params\": \(error)", nil)
      }
      let result = try await perform(
        step, params: params, script: script, folder: folder, args: args, fail: fail)
      switch result {
      case .value(let value):
        input = value
      case .returned(let value):
        return value
      case .jump(let target, let value):
        input = value ?? input
        index = try resolveTarget(target, script: script, fail: fail)
        continue
      }
      if let next = step.next {
        if next.isNull { return nil }
        index = try resolveTarget(next, script: script, fail: fail)
        continue
      }
      index += 1
    }
    return nil
  }

  private func resolveTarget(_ target: JSONValue, script: Script, fail: (String, Int32?) -> StepFailure)
    throws -> Int
  {
    switch target {
    case .number(let n) where n >= 0 && n == n.rounded() && Int(n) <= script.steps.count:
      return Int(n)
    case .string(let id):
      guard let found = script.stepIndex(forID: id) else { throw fail("no step with id '\(id)'", nil) }
      return found
    default:
      throw fail("cannot go to \(target.serialized()): expected a step index or id", nil)
    }
  }

  enum StepResult {
    case value(JSONValue)
    case returned(JSONValue)
    case jump(JSONValue, input: JSONValue?)
  }

  // MARK: Scope

  func makeScope(
    script: Script, args: JSONValue, input: JSONValue, cwd: String, port: Bool = true,
    env withEnv: Bool = true
  ) -> TemplateScope {
    let machine = context.machineGPUs
    let vendor = machine.first?.vendor.rawValue ?? "none"
    let assigned = machine.filter { context.job.gpuIndices.contains($0.index) }
    let gpuList: [TemplateValue] = assigned.map { g in
      .object(
        TemplateObject([
          ("index", .number(Double(g.index))), ("vendor", .string(g.vendor.rawValue)),
          ("model", .string(g.model)),
          ("vram", .number(Double(g.vramTotal) / 1e9)),
        ]))
    }
    let kernel = TemplateObject([
      ("platform", .string(context.host.platform)), ("arch", .string(context.host.arch)),
      ("gpu", .string(vendor)), ("gpu_model", machine.first.map { .string($0.model) } ?? .undefined),
      ("gpus", .array(gpuList)),
    ])
    var env = TemplateObject()
    if withEnv {
      for (key, value) in context.environment.sorted(by: { $0.key < $1.key }) { env[key] = .string(value) }
    }
    let workspace = context.workspace
    let pathDirs = (context.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    let variables: [String: TemplateValue] = [
      "platform": .string(context.host.platform),
      "arch": .string(context.host.arch),
      "gpu": .string(vendor),
      "gpus": .array(gpuList),
      "kernel": .object(kernel),
      "vram": .number(Double((assigned.isEmpty ? machine : assigned).map(\.vramTotal).max() ?? 0) / 1e9),
      "ram": .number(Double(context.host.memoryTotal) / 1e9),
      "args": TemplateValue(args),
      "input": TemplateValue(input),
      "local": TemplateValue(.object(locals)),
      "self": TemplateValue(.object(script.selfObject)),
      "env": withEnv ? .object(env) : .undefined,
      "cwd": .string(cwd),
      "port": port ? .number(Double(FreePort.find())) : .undefined,
    ]
    let functions: [String: TemplateFunction] = [
      "which": { arguments in
        guard case .string(let name)? = arguments.first, let path = Executables.find(name, in: pathDirs)
        else {
          return .null
        }
        return .string(path)
      },
      "exists": { arguments in
        guard case .string(let path)? = arguments.first else { return .bool(false) }
        guard let resolved = try? workspace.confinement.resolve(path, relativeTo: cwd) else {
          return .bool(false)
        }
        return .bool(FileManager.default.fileExists(atPath: resolved))
      },
    ]
    return TemplateScope(variables: variables, functions: functions)
  }
}
