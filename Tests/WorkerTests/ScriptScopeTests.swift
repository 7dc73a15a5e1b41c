import Foundation
import Shared
import Synchronization
import Testing

@testable import Worker

/// What a step's templates can see. The executor builds `env` (and finds a free `port`)
/// only for a step whose params or `when` mention them; these tests pin down that a step
/// that does sees them, in a message, in `when` and in `local.set`.
@Suite struct ScriptScopeTests {
  @Test func stepsThatMentionEnvSeeTheJobsEnvironment() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let script = """
      { "run": [
        { "method": "shell.run", "params": { "message": "echo HOME-IS {{env.HOME}}" } },
        { "when": "{{env.PINPOOL_JOB_ID === 'j7'}}", "method": "log", "params": { "text": "WHEN-SAW-ENV" } },
        { "when": "{{env.PINPOOL_JOB_ID === 'other'}}", "method": "log", "params": { "text": "NOT-THIS" } },
        { "method": "local.set", "params": { "workspace": "{{env.PINPOOL_WORKSPACE}}", "free": "{{port > 0}}" } },
        { "method": "shell.run", "params": { "message": "echo PLAIN-STEP" } }
      ] }
      """
    let workspace = try Workspace.create(
      workerRoot: dir.path, jobID: "j7", attempt: 1, files: [("run.json", 0o644, Array(script.utf8))])
    let job = AssignedJob(
      jobID: "j7", attempt: 1, name: "scope", entry: "run.json", args: .object(JSONObject()), gpuIndices: [],
      requirements: Requirements(), timeoutSeconds: nil, artifacts: [])
    let environment = JobEnvironment.make(
      workerRoot: dir.path, workspace: workspace.root, jobVariables: ["PINPOOL_JOB_ID": "j7"], gpuIndices: [],
      gpuVendor: nil, runtimeBin: [], passThrough: [])
    let context = ExecutionContext(
      job: job, workspace: workspace, workerRoot: dir.path,
      host: HostInfo(cpuCores: 2, memoryTotal: 1 << 30, platform: "linux", arch: "x64", hostname: "h"),
      machineGPUs: [], environment: environment, runtimeBin: [], shellOptions: ShellOptions())
    let lines = Mutex<[String]>([])
    let events = JobEvents(
      log: { _, line in lines.withLock { $0.append(line) } }, progress: { _, _, _, _ in }, notify: { _ in })
    let outcome = await ScriptExecutor(context: context, events: events).run()
    let log = lines.withLock { $0 }
    #expect(outcome.state == .succeeded, "\(outcome.error ?? "") \(log)")
    #expect(log.contains("HOME-IS \(workspace.root)/.home"), "\(log)")
    #expect(log.contains("WHEN-SAW-ENV"))
    #expect(!log.contains("NOT-THIS"))
    #expect(log.contains("PLAIN-STEP"))
    guard case .object(let locals) = outcome.locals else {
      Issue.record("locals: \(outcome.locals)")
      return
    }
    #expect(locals["workspace"] == .string(workspace.root))
    #expect(locals["free"] == .bool(true))
  }
}
