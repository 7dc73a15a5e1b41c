import Foundation
import Shared

/// Human output, as pure functions: views, the current time and a style in, text out.
/// The commands print what these return; the golden tests in `Tests/CLITests` pin it.
enum Render {
  // MARK: jobs

  static func jobs(_ views: [JobView], now: Double, style: OutputStyle) -> String {
    if views.isEmpty { return "no jobs" }
    var table = Table(header: ["ID", "NAME", "STATE", "WORKER", "GPUS", "STEP", "AGE"], flexible: 1)
    for view in views {
      table.append([
        Table.Cell(view.id), Table.Cell(view.name), Table.Cell(view.state.rawValue, colour(view.state)),
        Table.Cell(view.worker ?? "-"), Table.Cell(gpus(view)), Table.Cell(step(view)),
        Table.Cell(parseISO(view.submittedAt).map { age(since: $0, now: now) } ?? "-"),
      ])
    }
    return table.render(style: style)
  }

  /// The GPUs a job holds (`0,1`), or how many it asks for while it waits (`2 wanted`).
  static func gpus(_ view: JobView) -> String {
    if !view.gpus.isEmpty { return view.gpus.map(String.init).joined(separator: ",") }
    if !view.state.isFinal, view.worker == nil, view.requirements.effectiveGPUCount > 0 {
      return "\(view.requirements.effectiveGPUCount) wanted"
    }
    return "-"
  }

  /// `2/3` while a script runs; `-` before its first step is reported.
  static func step(_ view: JobView) -> String {
    view.step.count > 0 ? "\(view.step.index)/\(view.step.count)" : "-"
  }

  static func colour(_ state: JobState) -> Colour {
    switch state {
    case .queued: .yellow
    case .assigned, .running: .cyan
    case .serving: .blue
    case .succeeded: .green
    case .failed, .lost: .red
    case .cancelled: .magenta
    }
  }

  // MARK: workers

  static func workers(_ views: [WorkerView], now: Double, style: OutputStyle) -> String {
    if views.isEmpty {
      return "no workers; start one with `pinpool worker --coordinator ENDPOINT --root DIR`"
    }
    var table = Table(
      header: ["NAME", "STATE", "GPUS (VRAM FREE/TOTAL)", "DISK FREE", "RUNNING", "LAST SEEN"], flexible: 2)
    for view in views {
      let gpuCells = view.gpus.isEmpty ? ["-"] : view.gpus.map(gpu)
      table.append([
        Table.Cell(view.name), Table.Cell(view.state.rawValue, colour(view.state)), Table.Cell(gpuCells[0]),
        Table.Cell(ByteSize(bytes: view.diskFree).description), Table.Cell("\(view.running)/\(view.slots)"),
        Table.Cell(parseISO(view.lastSeen).map { age(since: $0, now: now) + " ago" } ?? "-"),
      ])
      // A worker's further GPUs on lines of their own, under the first.
      for cell in gpuCells.dropFirst() { table.append(["", "", Table.Cell(cell), "", "", ""]) }
    }
    return table.render(style: style)
  }

  static func gpu(_ gpu: GPUView) -> String {
    "\(gpu.index): \(gpu.model) \(ByteSize(bytes: gpu.vramFree).decimalDescription)/"
      + ByteSize(bytes: gpu.vramTotal).decimalDescription
  }

  static func colour(_ state: WorkerState) -> Colour {
    switch state {
    case .online: .green
    case .draining, .drained: .yellow
    case .offline: .red
    }
  }

  // MARK: status

  /// Most steps a timeline lists; longer scripts show a window around the current step.
  static let timelineWindow = 9

  static func status(_ view: JobView, now: Double, style: OutputStyle) -> String {
    var lines: [String] = []
    func add(_ label: String, _ value: String) {
      lines.append(style.paint(label.padding(toLength: 10, withPad: " ", startingAt: 0), .dim) + value)
    }
    add("job", style.paint(view.id, .bold) + "  " + view.name)
    add(
      "state",
      style.paint(view.state.rawValue, colour(view.state))
        + (view.attempt > 1 ? " (attempt \(view.attempt))" : ""))
    if let reason = view.waitReason { add("waiting", reason) }
    if let worker = view.worker {
      add(
        "worker",
        worker + (view.gpus.isEmpty ? "" : ", GPU \(view.gpus.map(String.init).joined(separator: ","))"))
    }
    if let array = view.array { add("array", array) }
    if view.step.count > 0 {
      add("step", "\(view.step.index)/\(view.step.count)")
      for line in timeline(view, style: style) { lines.append(String(repeating: " ", count: 10) + line) }
    }
    if let code = view.exitCode { add("exit code", "\(code)") }
    if let error = view.error { add("error", style.paint(error, view.state == .failed ? .red : nil)) }
    if case .object(let locals) = view.locals {
      for (key, value) in locals { add("local", "\(key) = \(value.interpolationText)") }
    }
    for note in view.notifications { add("notified", note) }
    for line in artifactLines(view) { add("artifacts", line) }
    for tool in view.environment?["runtime"]?["tools"]?.arrayValue ?? [] {
      if let name = tool["name"]?.stringValue {
        add("runtime", "\(name) \(tool["version"]?.stringValue ?? "?")")
      }
    }
    for venv in view.environment?["venvs"]?.arrayValue ?? [] {
      let packages = venv["packages"]?.arrayValue?.count ?? 0
      add(
        "venv",
        "\(venv["path"]?.stringValue ?? "?"): Python \(venv["python"]?.stringValue ?? "?"), "
          + "\(packages) package\(packages == 1 ? "" : "s") (status --json lists them)")
    }
    if let cleanup = cleanup(view.cleanup) { add("cleanup", cleanup) }
    let submitted = parseISO(view.submittedAt)
    add("submitted", view.submittedAt + (submitted.map { " (\(age(since: $0, now: now)) ago)" } ?? ""))
    let started = view.startedAt.flatMap(parseISO)
    // Time the worker spent preparing (its runtime on first use, a cache eviction) is not
    // time queued: a second or more of it gets a line of its own.
    let assigned = view.assignedAt.flatMap(parseISO)
    let preparing = assigned.map { (started ?? now) - $0 } ?? 0
    if let text = view.assignedAt, let assigned, let submitted, preparing >= 1 {
      add("assigned", text + " (after \(clock(assigned - submitted)) queued)")
      if view.startedAt == nil { add("preparing", clock(preparing)) }
    }
    if let text = view.startedAt {
      var waited = ""
      if let started, let assigned, preparing >= 1 {
        waited = " (after \(clock(started - assigned)) preparing)"
      } else if let started, let submitted {
        waited = " (after \(clock(started - submitted)) queued)"
      }
      add("started", text + waited)
    }
    if let text = view.finishedAt {
      var ran = ""
      if let finished = parseISO(text), let start = started ?? submitted {
        ran = " (ran \(clock(finished - start)))"
      }
      add("finished", text + ran)
    } else if let started, !view.state.isFinal {
      add("elapsed", clock(now - started))
    }
    return lines.joined(separator: "\n")
  }

  /// The step timeline: done steps ticked, the current one marked by how it stands,
  /// the rest waiting. Needs the step labels `status` carries; without them the block
  /// shows only `step n/m`.
  static func timeline(_ view: JobView, style: OutputStyle) -> [String] {
    guard let labels = view.steps, labels.count == view.step.count, !labels.isEmpty else { return [] }
    let current = view.step.index
    let count = labels.count
    var first = 1
    var last = count
    if count > timelineWindow {
      first = min(max(1, current - timelineWindow / 2), count - timelineWindow + 1)
      last = first + timelineWindow - 1
    }
    let numberWidth = String(count).count
    var lines: [String] = []
    if first > 1 { lines.append(style.paint("… \(first - 1) earlier", .dim)) }
    for number in first...last {
      let mark: String
      let colour: Colour?
      switch view.state {
      case .succeeded, .serving:
        (mark, colour) = ("✓", .green)
      case _ where number < current:
        (mark, colour) = ("✓", .green)
      case _ where number > current:
        (mark, colour) = ("·", .dim)
      case .failed, .lost:
        (mark, colour) = ("✗", .red)
      case .cancelled:
        (mark, colour) = ("■", .magenta)
      default:
        (mark, colour) = ("▶", .cyan)
      }
      let padded = String(repeating: " ", count: numberWidth - String(number).count) + String(number)
      lines.append(style.paint(mark, colour) + " " + padded + "  " + labels[number - 1])
    }
    if last < count { lines.append(style.paint("… \(count - last) more", .dim)) }
    return lines
  }

  /// One line per stored file: name, size and the start of its SHA-256 (`pinpool
  /// artifacts JOB` prints the whole digest; `--download` verifies it).
  static func artifactLines(_ view: JobView) -> [String] {
    (view.artifacts ?? []).map { artifact in
      "\(artifact.name)  \(ByteSize(bytes: artifact.size))  sha256 \(artifact.sha256.prefix(12))…"
        + (artifact.attempt != view.attempt ? "  (attempt \(artifact.attempt))" : "")
    }
  }

  static func cleanup(_ cleanup: CleanupView) -> String? {
    switch cleanup.state {
    case .none: return nil
    case .pending: return "pending"
    case .done:
      var text = "done"
      if let freed = cleanup.bytesFreed { text += ", \(ByteSize(bytes: freed)) freed" }
      if let free = cleanup.diskFreeAfter { text += ", \(ByteSize(bytes: free)) disk free after" }
      return text
    case .kept:
      return "kept" + (cleanup.reason.map { " (\($0))" } ?? "")
    }
  }

  // MARK: following a job

  /// The status line a followed job shows at the bottom of a terminal:
  /// `job 42 running · step 2/3 shell.run · 0:12`.
  static func followLine(_ view: JobView, now: Double, style: OutputStyle) -> String {
    var parts = ["job \(view.id) " + style.paint(view.state.rawValue, colour(view.state))]
    if view.state == .queued {
      if let reason = view.waitReason { parts.append("waiting: \(reason)") }
    } else if view.step.count > 0 {
      var text = "step \(view.step.index)/\(view.step.count)"
      if let labels = view.steps, labels.count == view.step.count, view.step.index >= 1 {
        text += " " + labels[view.step.index - 1]
      }
      parts.append(text)
    }
    if let worker = view.worker { parts.append("on \(worker)") }
    let since = view.startedAt.flatMap(parseISO) ?? parseISO(view.submittedAt)
    if let since { parts.append(clock(now - since)) }
    let line = parts.joined(separator: " · ")
    // Never wrap: a wrapped status line cannot be erased in place. A line too long
    // for the screen is cut, without colour so no escape sequence is cut through.
    if let width = style.width, style.colour ? visibleCount(line) > width - 1 : line.count > width - 1 {
      let plain = followLine(view, now: now, style: .plain)
      return String(plain.prefix(max(1, width - 2))) + "…"
    }
    return line
  }

  /// Characters a terminal shows, not counting ANSI colour sequences.
  static func visibleCount(_ text: String) -> Int {
    var count = 0
    var inEscape = false
    for ch in text {
      if inEscape {
        if ch == "m" { inEscape = false }
      } else if ch == "\u{1B}" {
        inEscape = true
      } else {
        count += 1
      }
    }
    return count
  }

  /// The last line of a followed job: `job 42 succeeded in 0:07`, or what went wrong.
  static func finalLine(_ view: JobView, style: OutputStyle) -> String {
    var line = "job \(view.id) " + style.paint(view.state.rawValue, colour(view.state))
    let start = view.startedAt.flatMap(parseISO) ?? parseISO(view.submittedAt)
    if let start, let end = view.finishedAt.flatMap(parseISO) {
      line += (view.state == .succeeded ? " in " : " after ") + clock(end - start)
    }
    if view.state != .succeeded {
      if let code = view.exitCode { line += " (exit code \(code))" }
      if let error = view.error { line += ": \(error)" }
    }
    return line
  }
}
