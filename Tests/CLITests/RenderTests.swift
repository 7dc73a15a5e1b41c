import Foundation
import Shared
import Testing

@testable import pinpool

/// Golden tests of the human output: exact text for fixed views, a fixed "now" and a
/// fixed style.
@Suite struct RenderTests {
  @Test func jobsTable() {
    expectGolden(Render.jobs(Fixtures.jobs, now: Fixtures.now, style: .plain), "jobs")
  }

  @Test func jobsTableFitsANarrowTerminal() {
    let text = Render.jobs(Fixtures.jobs, now: Fixtures.now, style: OutputStyle(colour: false, width: 60))
    expectGolden(text, "jobs-narrow")
    for line in text.split(separator: "\n") { #expect(line.count <= 60, "\(line)") }
  }

  @Test func colourKeepsTheColumnsAligned() {
    let plain = Render.jobs(Fixtures.jobs, now: Fixtures.now, style: .plain)
    let coloured = Render.jobs(Fixtures.jobs, now: Fixtures.now, style: OutputStyle(colour: true, width: nil))
    #expect(coloured != plain)
    #expect(coloured.contains("\u{1B}[32msucceeded\u{1B}[0m"))
    #expect(coloured.contains("\u{1B}[31mfailed\u{1B}[0m"))
    #expect(stripANSI(coloured) == plain)
    let workers = Render.workers(
      Fixtures.workers, now: Fixtures.now, style: OutputStyle(colour: true, width: nil))
    #expect(stripANSI(workers) == Render.workers(Fixtures.workers, now: Fixtures.now, style: .plain))
  }

  @Test func emptyLists() {
    #expect(Render.jobs([], now: Fixtures.now, style: .plain) == "no jobs")
    #expect(Render.workers([], now: Fixtures.now, style: .plain).hasPrefix("no workers; start one with"))
  }

  @Test func workersTable() {
    expectGolden(Render.workers(Fixtures.workers, now: Fixtures.now, style: .plain), "workers")
  }

  @Test func statusOfARunningJobShowsTheTimeline() {
    expectGolden(Render.status(Fixtures.running, now: Fixtures.now, style: .plain), "status-running")
  }

  /// Time the worker spent preparing is shown apart from the time queued; under a
  /// second of it changes nothing.
  @Test func statusTellsPreparingFromQueued() {
    var prepared = Fixtures.job("50", "first-use", .running, worker: "edge-1", submitted: 330, started: 300)
    prepared.assignedAt = Fixtures.iso(325)
    let lines = Render.status(prepared, now: Fixtures.now, style: .plain).split(separator: "\n")
    #expect(lines.contains { $0 == "assigned  \(Fixtures.iso(325)) (after 0:05 queued)" }, "\(lines)")
    #expect(lines.contains { $0 == "started   \(Fixtures.iso(300)) (after 0:25 preparing)" }, "\(lines)")

    var waiting = Fixtures.job("51", "first-use", .assigned, worker: "edge-1", submitted: 30)
    waiting.assignedAt = Fixtures.iso(28)
    let shown = Render.status(waiting, now: Fixtures.now, style: .plain).split(separator: "\n")
    #expect(shown.contains { $0 == "assigned  \(Fixtures.iso(28)) (after 0:02 queued)" }, "\(shown)")
    #expect(shown.contains { $0 == "preparing 0:28" }, "\(shown)")

    var prompt = Fixtures.running
    prompt.assignedAt = prompt.startedAt
    #expect(
      Render.status(prompt, now: Fixtures.now, style: .plain)
        == Render.status(Fixtures.running, now: Fixtures.now, style: .plain))
  }

  @Test func statusOfAServingJobShowsLocalsAndNotifications() {
    expectGolden(Render.status(Fixtures.serving, now: Fixtures.now, style: .plain), "status-serving")
  }

  @Test func statusOfAFailedJobShowsTheErrorAndCleanup() {
    expectGolden(Render.status(Fixtures.failed, now: Fixtures.now, style: .plain), "status-failed")
  }

  @Test func statusOfAQueuedJobSaysWhyItWaits() {
    expectGolden(Render.status(Fixtures.queued, now: Fixtures.now, style: .plain), "status-queued")
  }

  @Test func statusWithoutStepLabelsAndAKeptWorkspace() {
    expectGolden(Render.status(Fixtures.kept, now: Fixtures.now, style: .plain), "status-kept")
  }

  @Test func longTimelinesShowAWindowAroundTheCurrentStep() {
    expectGolden(Render.status(Fixtures.long, now: Fixtures.now, style: .plain), "status-long")
  }

  @Test func followLines() {
    let lines = [
      Render.followLine(Fixtures.running, now: Fixtures.now, style: .plain),
      Render.followLine(Fixtures.queued, now: Fixtures.now, style: .plain),
      Render.followLine(Fixtures.serving, now: Fixtures.now, style: .plain),
      Render.followLine(Fixtures.running, now: Fixtures.now, style: OutputStyle(colour: true, width: 40)),
      Render.finalLine(Fixtures.jobs[0], style: .plain),
      Render.finalLine(Fixtures.failed, style: .plain),
      Render.finalLine(Fixtures.kept, style: .plain),
    ]
    expectGolden(lines.joined(separator: "\n"), "follow")
    // On a narrow terminal the status line never wraps (it could not be erased in place).
    #expect(lines[3].count <= 39)
  }

  @Test func clockAndAge() {
    #expect(clock(7) == "0:07")
    #expect(clock(725) == "12:05")
    #expect(clock(3723) == "1:02:03")
    #expect(clock(-3) == "0:00")
    #expect(age(since: 0, now: 59) == "59s")
    #expect(age(since: 0, now: 3600) == "1h")
    #expect(age(since: 0, now: 200_000) == "2d")
  }
}

/// The `--json` shapes are a contract (DESIGN.md): the golden files pin every key, so
/// a rename fails here; added fields show up as a golden diff to review.
@Suite struct JSONShapeTests {
  @Test func statusShape() throws {
    let text = jsonText(Fixtures.running)
    expectGolden(text, "json-status")
    let object = try #require(
      JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    for key in [
      "id", "name", "state", "attempt", "worker", "exitCode", "error", "locals", "step", "cleanup",
      "submittedAt",
      "startedAt", "finishedAt",
    ] {
      // Optional fields that are nil are left out of the object, as JSONEncoder does;
      // the failed job below carries every one of them.
      if ["exitCode", "error", "finishedAt"].contains(key) { continue }
      #expect(object[key] != nil, "status --json lacks \(key)")
    }
    let failed = try #require(
      JSONSerialization.jsonObject(with: Data(jsonText(Fixtures.failed).utf8)) as? [String: Any])
    for key in ["exitCode", "error", "finishedAt"] {
      #expect(failed[key] != nil, "status --json lacks \(key)")
    }
    let step = try #require(object["step"] as? [String: Any])
    #expect(Set(step.keys) == ["index", "count"])
    let cleanup = try #require(failed["cleanup"] as? [String: Any])
    #expect(cleanup["state"] as? String == "done")
    #expect(cleanup["bytesFreed"] as? Int == 3_435_973_837)
  }

  @Test func jobsShape() {
    expectGolden(jsonText(Array(Fixtures.jobs.prefix(2))), "json-jobs")
  }

  @Test func workersShape() throws {
    let text = jsonText(Fixtures.workers)
    expectGolden(text, "json-workers")
    let array = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
    for key in ["id", "name", "state", "gpus", "diskFree", "slots", "running", "lastSeen"] {
      #expect(array[0][key] != nil, "workers --json lacks \(key)")
    }
    let gpu = try #require((array[0]["gpus"] as? [[String: Any]])?.first)
    #expect(Set(gpu.keys).isSuperset(of: ["index", "vendor", "model", "vramTotal", "vramFree"]))
  }

  @Test func submitAndLogShapes() {
    let submit = jsonText(SubmitReply(id: "7", ids: ["7", "8", "9"]))
    let line = jsonText(
      LogLineView(seq: 12, stream: .stdout, time: Fixtures.iso(5), line: "Downloading model…", attempt: 1))
    expectGolden(submit + "\n" + line, "json-submit-logs")
  }
}
