import CZeroMQ
import Foundation
import Shared
import Testing

/// The walking skeleton end to end: real coordinator and worker processes on loopback,
/// driven through the CLI.
@Suite(.serialized)
struct SkeletonTests {
  @Test func jobsLandOnMatchingWorkersAndCleanUp() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("gpu-box", gpus: ["nvidia:NVIDIA GeForce RTX 4090:24GiB"])
      try pool.startWorker("cpu-box")

      let gpuScript = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
            "echo CVD=[$CUDA_VISIBLE_DEVICES]",
            "head -c 100000 /dev/zero > filler.bin",
            "for i in $(seq 1 300); do echo line-$i; done"
        ] } } ] }
        """, name: "gpu.json", in: pool.directory)
      let plainScript = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo plain-ran on $HOSTNAME" } } ] }"#,
        name: "plain.json", in: pool.directory)

      let gpuJob = try pool.submit([gpuScript, "--gpus", "1", "--vram", "16GB"])
      let plainJob = try pool.submit([plainScript])
      let hugeJob = try pool.submit([plainScript, "--vram", "80GB", "--name", "needs-80"])

      let gpuView = try pool.waitForFinal(gpuJob)
      #expect(gpuView.state == .succeeded)
      #expect(gpuView.worker == "gpu-box")
      #expect(gpuView.gpus == [0])
      #expect(gpuView.exitCode == 0)
      #expect(gpuView.cleanup.state == .done)
      #expect((gpuView.cleanup.bytesFreed ?? 0) >= 100_000)

      let lines = try pool.logLines(gpuJob)
      #expect(lines.contains { $0.line == "CVD=[0]" })
      let numbered = lines.filter { $0.line.hasPrefix("line-") }.map(\.line)
      #expect(numbered == (1...300).map { "line-\($0)" })
      #expect(lines.map(\.seq) == Array(1...lines.count))

      let plainView = try pool.waitForFinal(plainJob)
      #expect(plainView.state == .succeeded)
      #expect(try pool.logLines(plainJob).contains { $0.line.hasPrefix("plain-ran") })

      // Both workers are idle now; the 80 GB job still fits neither and says why.
      let huge = try pool.status(hugeJob)
      #expect(huge.state == .queued)
      let reason = try #require(huge.waitReason)
      #expect(reason.contains("80 GB"))
      #expect(reason.contains("gpu-box"))
      #expect(reason.contains("24 GiB"))

      for (worker, job) in [("gpu-box", gpuJob), ("cpu-box", plainJob)] {
        let view = try pool.status(job)
        let root = pool.workerRoot(view.worker ?? worker)
        #expect(!FileManager.default.fileExists(atPath: root + "/jobs/\(job)-1"))
      }

      let human = pool.cli(["status", hugeJob])
      #expect(human.status == 0)
      #expect(human.stdout.contains("waiting"))
      let workers = pool.cli(["workers"])
      #expect(workers.stdout.contains("gpu-box"))
      #expect(workers.stdout.contains("RTX 4090"))
    }
  }

  @Test func coordinatorRestartKeepsEveryJob() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("w1")
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo done-before-restart" } } ] }"#,
        in: pool.directory)
      let finished = try pool.submit([script])
      try pool.waitForFinal(finished)
      // A job no worker can take stays queued across the restart.
      let queued = try pool.submit([script, "--gpus", "2", "--priority", "5"])
      let array: SubmitReply = try pool.json(["submit", script, "--array", "1-3", "--gpus", "4"])
      #expect(array.ids.count == 3)
      let before: [JobView] = try pool.json(["jobs"])

      pool.killCoordinator()
      try pool.startCoordinator()

      let after: [JobView] = try pool.json(["jobs"])
      #expect(after.map(\.id) == before.map(\.id))
      #expect(after.map(\.state) == before.map(\.state))
      #expect(try pool.status(finished).state == .succeeded)
      #expect(try pool.status(queued).state == .queued)
      #expect(try pool.logLines(finished).contains { $0.line == "done-before-restart" })

      // New ids continue after the old ones, and the pool still runs work.
      let next = try pool.submit([script])
      #expect(Int(next)! > Int(array.ids.last!)!)
      #expect(try pool.waitForFinal(next).state == .succeeded)
    }
  }

  @Test func badInputGetsClearErrors() throws {
    try withPool { pool in
      try pool.startCoordinator()
      let missing = pool.cli(["status", "99999"])
      #expect(missing.status != 0)
      #expect(missing.stderr.contains("no job '99999'"))

      let script = try writeScript(#"{ "run": [] }"#, in: pool.directory)
      let badSize = pool.cli(["submit", script, "--vram", "lots"])
      #expect(badSize.status != 0)
      #expect(badSize.stderr.contains("invalid size 'lots'"))

      let badArg = pool.cli(["submit", script, "--arg", "novalue"])
      #expect(badArg.stderr.contains("expected key=value"))

      let unreachable = pool.cli([
        "jobs", "--coordinator", "tcp://127.0.0.1:\(Pool.freePort())", "--reply-timeout", "1",
      ])
      #expect(unreachable.status != 0)
      #expect(unreachable.stderr.contains("no answer from the coordinator"))

      let broken = try writeScript("{ \"run\": [ { \"method\": ", name: "broken.json", in: pool.directory)
      let result = pool.cli(["submit", broken])
      #expect(result.status != 0)
      #expect(result.stderr.contains("broken.json:1:"))
    }
  }
}

/// Hostile frames sent straight to the coordinator's socket get error replies, and
/// the coordinator keeps serving.
@Suite(.serialized)
struct MalformedMessageTests {
  @Test func garbageGetsErrorRepliesAndTheCoordinatorKeepsServing() throws {
    try withPool { pool in
      try pool.startCoordinator()
      let context = ZMQContext()
      let socket = try ZMQSocket(context: context, kind: .dealer)
      defer { socket.close() }
      // A reply that never comes fails the test instead of hanging it.
      try socket.setOption(ZMQ_RCVTIMEO, Int32(10_000))
      try socket.connect(pool.endpoint)
      let cases: [([Data], String)] = [
        ([Data("hello".utf8)], "frame"),
        ([Data("PINPOOL/9".utf8), Data("status".utf8), Data("{}".utf8)], "unsupported protocol 'PINPOOL/9'"),
        (
          [Data(WireEnvelope.protocolID.utf8), Data("frobnicate".utf8), Data("{}".utf8)],
          "unknown message type 'frobnicate'"
        ),
        (
          [Data(WireEnvelope.protocolID.utf8), Data("status".utf8), Data("{not json".utf8)],
          "malformed 'status' header"
        ),
        (
          [Data(WireEnvelope.protocolID.utf8), Data("submit".utf8), Data(#"{"requestID":"r1"}"#.utf8)],
          "malformed 'submit' header: missing field"
        ),
        (
          [Data(WireEnvelope.protocolID.utf8), Data("assign".utf8), Data("{}".utf8)],
          "not accepted by a coordinator"
        ),
      ]
      for (frames, expected) in cases {
        _ = try socket.send(frames, dontWait: false)
        let reply = try #require(try socket.receive(dontWait: false))
        let envelope = try WireEnvelope(frames: reply)
        #expect(envelope.type == .error)
        let message = try envelope.decode(ErrorReply.self).message
        #expect(message.contains(expected), "\(message)")
      }
      #expect(pool.cli(["workers"]).status == 0)
      let script = try writeScript(
        #"{ "run": [ { "method": "log", "params": { "text": "still-serving" } } ] }"#, in: pool.directory)
      try pool.startWorker("w")
      let id = try pool.submit([script])
      #expect(try pool.waitForFinal(id).state == .succeeded)
    }
  }
}
