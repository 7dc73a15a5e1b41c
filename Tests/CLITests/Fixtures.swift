import Foundation
import Shared
import Testing

@testable import pinpool

/// Fixed views and a fixed "now" (2025-03-01T12:00:00Z), so the renderers' output is
/// the same on every run and can be compared with the golden files.
enum Fixtures {
  static let now: Double = 1_740_830_400

  static func iso(_ secondsBeforeNow: Double) -> String { Timestamp.iso(now - secondsBeforeNow) }

  static func job(
    _ id: String, _ name: String, _ state: JobState, worker: String? = nil, gpus: [Int] = [],
    step: (Int, Int) = (0, 0), submitted: Double, started: Double? = nil, finished: Double? = nil,
    attempt: Int = 1, requirements: Requirements = Requirements(), exitCode: Int32? = nil,
    error: String? = nil,
    waitReason: String? = nil, locals: JSONObject = JSONObject(), notifications: [String] = [],
    cleanup: CleanupView = CleanupView(state: .none, bytesFreed: nil), steps: [String]? = nil
  ) -> JobView {
    JobView(
      id: id, name: name, state: state, attempt: attempt, worker: worker, exitCode: exitCode, error: error,
      locals: .object(locals), step: StepView(index: step.0, count: step.1), cleanup: cleanup,
      submittedAt: iso(submitted), startedAt: started.map(iso), finishedAt: finished.map(iso), priority: 0,
      requirements: requirements, gpus: gpus, waitReason: waitReason, notifications: notifications,
      steps: steps)
  }

  static let jobs: [JobView] = [
    job(
      "40", "hello", .succeeded, worker: "edge-3", step: (3, 3), submitted: 7300, started: 7290,
      finished: 7200, cleanup: CleanupView(state: .done, bytesFreed: 1_048_576)),
    job(
      "41", "render-hunyuan-video-clip", .running, worker: "studio-a100", gpus: [0, 1], step: (2, 5),
      submitted: 330, started: 300),
    job(
      "42", "transcode", .queued, step: (0, 0), submitted: 12, requirements: Requirements(gpus: 1),
      waitReason: "no worker has a GPU with 60 GB VRAM free (largest: studio-a100, 24 GiB)"),
    job(
      "43", "broken", .failed, worker: "laptop", step: (1, 2), submitted: 90_000, started: 89_990,
      finished: 89_900, exitCode: 2, error: "install.json step 1 (shell.run): exit code 2"),
  ]

  static func gpu(_ index: Int, _ model: String, total: String, free: String) -> GPUView {
    var view = GPUView(try! GPU(declaration: "nvidia:\(model):\(total)", index: index))
    view.vramFree = try! ByteSize(parsing: free).bytes
    return view
  }

  static let workers: [WorkerView] = [
    WorkerView(
      id: "w-1", name: "studio-a100", state: .online,
      gpus: [
        gpu(0, "NVIDIA A100-SXM4-80GB", total: "80GiB", free: "20GiB"),
        gpu(1, "NVIDIA A100-SXM4-80GB", total: "80GiB", free: "80GiB"),
      ],
      diskFree: 1_200_000_000_000, slots: 2, running: 1, lastSeen: iso(2), labels: ["site": "studio"],
      cpuCores: 64, memoryTotal: 512_000_000_000),
    WorkerView(
      id: "w-2", name: "edge-3", state: .draining,
      gpus: [gpu(0, "NVIDIA GeForce RTX 4090", total: "24GiB", free: "24GiB")],
      diskFree: 250 * 1_073_741_824, slots: 1, running: 0, lastSeen: iso(4), labels: [:], cpuCores: 16,
      memoryTotal: 64_000_000_000),
    WorkerView(
      id: "w-3", name: "laptop", state: .offline, gpus: [], diskFree: 80 * 1_073_741_824, slots: 1,
      running: 0,
      lastSeen: iso(3900), labels: [:], cpuCores: 8, memoryTotal: 16_000_000_000),
  ]

  static let labels = [
    "shell.run (clone)", "shell.run (venv)", "script.start torch.json", "hf.download", "shell.run",
  ]

  static let running = job(
    "41", "render-hunyuan-video-clip", .running, worker: "studio-a100", gpus: [0, 1], step: (3, 5),
    submitted: 330, started: 300, attempt: 2, steps: labels)

  static let serving = job(
    "44", "comfyui", .serving, worker: "edge-3", gpus: [0], step: (5, 5), submitted: 700, started: 650,
    locals: JSONObject([("url", .string("http://10.0.0.7:8188"))]), notifications: ["ComfyUI is ready"],
    steps: labels)

  static let failed = job(
    "43", "broken", .failed, worker: "laptop", step: (1, 2), submitted: 90_000, started: 89_990,
    finished: 89_900,
    exitCode: 2, error: "install.json step 1 (shell.run): exit code 2",
    cleanup: CleanupView(
      state: .done, bytesFreed: 3_435_973_837, diskFreeAfter: 85_899_345_920),
    steps: ["shell.run", "fs.download"])

  static let queued = job(
    "42", "transcode", .queued, submitted: 12, requirements: Requirements(gpus: 1),
    waitReason: "no worker has a GPU with 60 GB VRAM free (largest: studio-a100, 24 GiB)")

  static let kept = job(
    "45", "keep-me", .failed, worker: "edge-3", step: (2, 2), submitted: 100, started: 95, finished: 40,
    exitCode: 1, error: "step 2: exit code 1",
    cleanup: CleanupView(state: .kept, bytesFreed: nil, reason: "--keep-failed 2h"))

  /// A script of 20 steps at step 12: the timeline shows a window around it.
  static let long = job(
    "46", "long", .running, worker: "edge-3", step: (12, 20), submitted: 100, started: 90,
    steps: (1...20).map { "shell.run (s\($0))" })
}

/// Compares text with `Tests/CLITests/Golden/NAME.txt`. `PINPOOL_UPDATE_GOLDEN=1` writes
/// the files instead (then review the diff, as with any golden file).
func expectGolden(_ actual: String, _ name: String, sourceLocation: Testing.SourceLocation = #_sourceLocation)
{
  let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
    "Golden/\(name).txt")
  let text = actual.hasSuffix("\n") ? actual : actual + "\n"
  if ProcessInfo.processInfo.environment["PINPOOL_UPDATE_GOLDEN"] == "1" {
    try? text.write(to: url, atomically: true, encoding: .utf8)
    return
  }
  guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
    Issue.record(
      "no golden file \(url.path); run with PINPOOL_UPDATE_GOLDEN=1. Output:\n\(text)",
      sourceLocation: sourceLocation)
    return
  }
  #expect(text == expected, "differs from Golden/\(name).txt", sourceLocation: sourceLocation)
}

/// Removes ANSI colour sequences.
func stripANSI(_ text: String) -> String {
  text.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
}
