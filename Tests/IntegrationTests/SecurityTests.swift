import CZeroMQ
import Foundation
import Shared
import Testing

/// CurveZMQ and roles with real processes: only enrolled keys get in, and each role
/// may do only its own things.
@Suite(.serialized) struct SecurityTests {
  /// Makes a key pair with the CLI, as an operator would, and returns its folder.
  private func keyFolder(_ pool: Pool, _ name: String, enrollAs role: String?, in keys: String) throws
    -> String
  {
    let folder = pool.directory.appendingPathComponent("keys-\(name)").path
    let made = pool.cli(["keys", "generate", "--out", folder, "--name", name])
    try #require(made.status == 0, "\(made.stderr)")
    if let role {
      let enrolled = pool.cli(["keys", "enroll", folder + "/\(name).key", "--keys", keys, "--role", role])
      try #require(enrolled.status == 0, "\(enrolled.stderr)")
    }
    try FileManager.default.copyItem(atPath: keys + "/coordinator.key", toPath: folder + "/coordinator.key")
    return folder
  }

  /// The coordinator's keys folder, made with the CLI.
  private func coordinatorKeys(_ pool: Pool) throws -> String {
    let keys = pool.directory.appendingPathComponent("coordinator-keys").path
    try #require(pool.cli(["keys", "generate", "--out", keys, "--name", "coordinator"]).status == 0)
    return keys
  }

  @Test func onlyEnrolledKeysGetInAndEachRoleDoesOnlyItsOwnThings() throws {
    try withPool { pool in
      let keys = try coordinatorKeys(pool)
      let edge = try keyFolder(pool, "edge", enrollAs: "worker", in: keys)
      let alice = try keyFolder(pool, "alice", enrollAs: "client", in: keys)
      let carol = try keyFolder(pool, "carol", enrollAs: "client", in: keys)
      let bob = try keyFolder(pool, "bob", enrollAs: "admin", in: keys)
      let stranger = try keyFolder(pool, "stranger", enrollAs: nil, in: keys)

      pool.cliEnvironment = ["PINPOOL_KEYS": alice]
      try pool.startCoordinator(extra: ["--keys", keys])

      // An unenrolled worker key and a client key posing as a worker: neither joins.
      try pool.startWorker("stranger", extra: ["--keys", stranger], waitForRegistration: false)
      try pool.startWorker("impostor", extra: ["--keys", alice], waitForRegistration: false)
      try pool.waitUntil("the coordinator refuses both", timeout: 30) {
        let log = pool.daemonLog("coordinator")
        return log.contains("refused an unenrolled key")
          && log.contains("client alice may not send register: that needs a worker key")
      }
      #expect(pool.daemonLog("worker-impostor").contains("may not send register"))
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "sleep 60" } } ] }"#, in: pool.directory)
      let first = try pool.submit([script])
      let workers: [WorkerView] = try pool.json(["workers"])
      #expect(workers.isEmpty)
      #expect(try pool.status(first).state == .queued)

      // The enrolled worker joins and takes the job.
      try pool.startWorker("edge", extra: ["--keys", edge])
      _ = try pool.waitForState(first, [.running], timeout: 30)
      #expect(try pool.status(first).worker == "edge")

      // No key at all: the CURVE handshake never completes, and the error says what to do.
      let bare = pool.cli(["workers", "--reply-timeout", "1"], environment: ["PINPOOL_KEYS": ""])
      #expect(bare.status != 0)
      #expect(bare.stderr.contains("pass --keys DIR"))

      // A client may not drain; an admin may.
      let drain = pool.cli(["drain", "edge"])
      #expect(drain.status != 0)
      #expect(drain.stderr.contains("client alice may not send drain: that needs an admin key"))
      #expect(pool.cli(["drain", "edge"], environment: ["PINPOOL_KEYS": bob]).status == 0)
      #expect(pool.cli(["undrain", "edge"], environment: ["PINPOOL_KEYS": bob]).status == 0)

      // A worker key may not act as a client.
      let asClient = pool.cli(["jobs"], environment: ["PINPOOL_KEYS": edge])
      #expect(asClient.stderr.contains("worker edge may not send jobs"))

      // Carol may not cancel Alice's job; Alice may; an admin may cancel anyone's.
      let refused = pool.cli(["cancel", first], environment: ["PINPOOL_KEYS": carol])
      #expect(refused.status != 0)
      #expect(refused.stderr.contains("job \(first) was submitted by alice"))
      #expect(try pool.status(first).state == .running)
      #expect(pool.cli(["cancel", first]).status == 0)
      #expect(try pool.waitForFinal(first, timeout: 30).state == .cancelled)
      let carols: SubmitReply = try pool.json(["submit", script], environment: ["PINPOOL_KEYS": carol])
      #expect(pool.cli(["cancel", carols.id], environment: ["PINPOOL_KEYS": bob]).status == 0)
      #expect(try pool.waitForFinal(carols.id, timeout: 30).state == .cancelled)

      // Enrolling needs no restart: the stranger, still knocking, gets in.
      let enrolled = pool.cli([
        "keys", "enroll", stranger + "/stranger.key", "--keys", keys, "--role", "worker",
      ])
      #expect(enrolled.status == 0, "\(enrolled.stderr)")
      try pool.waitUntil("the newly enrolled worker registers", timeout: 60) {
        let workers: [WorkerView]? = try? pool.json(["workers"])
        return workers?.contains { $0.name == "stranger" && $0.state == .online } == true
      }
    }
  }

  /// Deleting a key's file revokes it for the connection already open too: a worker
  /// whose key goes is refused from its next message on and falls offline.
  @Test func aRevokedWorkerKeyLosesTheConnectionItHasOpen() throws {
    try withPool { pool in
      let keys = try coordinatorKeys(pool)
      let edge = try keyFolder(pool, "edge", enrollAs: "worker", in: keys)
      pool.cliEnvironment = ["PINPOOL_KEYS": try keyFolder(pool, "alice", enrollAs: "client", in: keys)]
      try pool.startCoordinator(extra: ["--keys", keys])
      try pool.startWorker("edge", extra: ["--keys", edge])

      try FileManager.default.removeItem(atPath: keys + "/workers/edge.key")
      try pool.waitUntil("the revoked worker falls offline", timeout: 30) {
        let workers: [WorkerView]? = try? pool.json(["workers"])
        return workers?.first { $0.name == "edge" }?.state == .offline
      }
      #expect(pool.daemonLog("coordinator").contains("worker edge's key is no longer enrolled"))
      #expect(pool.daemonLog("worker-edge").contains("no longer enrolled"))
      // No job goes to it; the client, still enrolled, is served.
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo hi" } } ] }"#, in: pool.directory)
      let id = try pool.submit([script])
      #expect(try pool.status(id).state == .queued)
    }
  }

  @Test func badKeyMaterialStopsTheCoordinatorAtStart() throws {
    try withPool { pool in
      let keys = pool.directory.appendingPathComponent("keys").path
      try #require(pool.cli(["keys", "generate", "--out", keys, "--name", "coordinator"]).status == 0)
      // No role folders yet: nobody could ever connect.
      var run = pool.cli([
        "coordinator", "--data", pool.dataDirectory, "--keys", keys, "--bind", pool.endpoint,
      ])
      #expect(run.status != 0)
      #expect(run.stderr.contains("pinpool keys enroll"))

      try FileManager.default.createDirectory(atPath: keys + "/clients", withIntermediateDirectories: true)
      try "curve\n    public-key = \"too short\"\n".write(
        toFile: keys + "/clients/broken.key", atomically: true, encoding: .utf8)
      run = pool.cli(["coordinator", "--data", pool.dataDirectory, "--keys", keys, "--bind", pool.endpoint])
      #expect(run.status != 0)
      #expect(run.stderr.contains("clients/broken.key:2: not a CURVE key file"))
      try FileManager.default.removeItem(atPath: keys + "/clients/broken.key")

      chmod(keys + "/coordinator.key_secret", 0o644)
      run = pool.cli(["coordinator", "--data", pool.dataDirectory, "--keys", keys, "--bind", pool.endpoint])
      #expect(run.status != 0)
      #expect(run.stderr.contains("chmod 600"))
    }
  }

  @Test func aNonLoopbackBindWithoutKeysIsRefused() throws {
    try withPool { pool in
      let run = pool.cli([
        "coordinator", "--data", pool.dataDirectory, "--bind", "tcp://0.0.0.0:\(Pool.freePort())",
      ])
      #expect(run.status != 0)
      #expect(run.stderr.contains("without keys"))
      #expect(run.stderr.contains("--insecure"))
    }
  }

  @Test func aHundredMegabyteFrameIsRefusedWithoutHarm() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("a")
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo fine" } } ] }"#, in: pool.directory
      )
      let before = try pool.submit([script])
      _ = try pool.waitForFinal(before, timeout: 30)

      let context = ZMQContext()
      let socket = try ZMQSocket(context: context, kind: .dealer)
      defer { socket.close() }
      try socket.connect(pool.endpoint)
      let huge = Data(count: 100 * 1024 * 1024)
      let submit = WireEnvelope(
        .submit,
        SubmitRequest(
          requestID: "huge", name: "huge", entry: "run.json", args: .object(JSONObject()),
          requirements: Requirements(), priority: 0, retries: 0, timeoutSeconds: nil, artifacts: [],
          arrayIndices: nil),
        payload: [huge])
      #expect(try socket.send(submit.frames, dontWait: false))
      // libzmq drops the sender's connection when the frame passes --max-message; the
      // coordinator reads none of it. Poll the sender for a reply that must never come,
      // while the pool keeps answering and working.
      let after = try pool.submit([script])
      #expect(try pool.waitForFinal(after, timeout: 30).state == .succeeded)
      // Without the limit it would have read all of it and answered "bundle over the
      // limit" by now; a few more round trips give any such reply time to arrive.
      for _ in 0..<5 { #expect(pool.cli(["workers"]).status == 0) }
      #expect(try socket.receive() == nil)
      let jobs: [JobView] = try pool.json(["jobs"])
      #expect(Set(jobs.map(\.id)) == [before, after])
      #expect(jobs.allSatisfy { $0.state == .succeeded })
    }
  }

  @Test func submitsPastTheRateLimitAreRefusedWithTheLimit() throws {
    try withPool { pool in
      // One submit per 100 s, so the second one within the test is always too soon.
      try pool.startCoordinator(extra: ["--submit-rate", "0.01", "--submit-burst", "1"])
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo hi" } } ] }"#, in: pool.directory)
      let reply: SubmitReply = try pool.json(["submit", script, "--array", "1-20"])
      #expect(reply.ids.count == 20)
      let refused = pool.cli(["submit", script])
      #expect(refused.status != 0)
      #expect(refused.stderr.contains("too many submits: at most 0.01 a second per client (bursts of 1)"))
      let jobs: [JobView] = try pool.json(["jobs"])
      #expect(jobs.count == 20)
    }
  }
}
