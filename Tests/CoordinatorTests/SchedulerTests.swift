import Testing

@testable import Coordinator
@testable import Shared

private let GB: Int64 = 1_000_000_000

private func gpu(_ index: Int, _ vramGB: Int64, vendor: GPUVendor = .nvidia) -> GPU {
  GPU(index: index, vendor: vendor, model: "card-\(vramGB)", vramTotal: vramGB * GB, vramFree: vramGB * GB)
}

private func capacity(
  gpus: [GPU] = [], reserved: Set<Int> = [], slots: Int = 1, disk: Int64 = 1_000 * GB,
  memory: Int64 = 64 * GB, labels: [String: String] = [:]
) -> WorkerCapacity {
  WorkerCapacity(
    gpus: gpus, reservedGPUIndices: reserved, freeSlots: slots, diskFree: disk, memoryTotal: memory,
    labels: labels)
}

private func job(_ id: Int64, priority: Int = 0, _ requirements: Requirements = Requirements()) -> LiveJob {
  LiveJob(
    id: id, name: "job-\(id)", priority: priority, requirements: requirements, attempt: 0, retries: 0,
    failures: 0, lostCount: 0, state: .queued, workerID: nil, submittedAt: 0)
}

/// A queue and job table built from jobs in submission order.
private func queued(_ jobs: [LiveJob]) -> (JobQueue, [Int64: LiveJob]) {
  var queue = JobQueue()
  var table: [Int64: LiveJob] = [:]
  for job in jobs {
    queue.insert(job.queueKey)
    table[job.id] = job
  }
  return (queue, table)
}

private func plan(_ jobs: [LiveJob], _ capacities: [String: WorkerCapacity]) -> [Assignment] {
  let (queue, table) = queued(jobs)
  return Scheduler.plan(
    queue: queue, jobs: table, capacities: capacities,
    names: Dictionary(uniqueKeysWithValues: capacities.keys.map { ($0, $0) }))
}

private func worker(
  _ name: String, gpus: [GPU] = [], slots: Int = 1, disk: Int64 = 1_000 * GB, labels: [String: String] = [:],
  online: Bool = true, drained: Bool = false
) -> WorkerRecord {
  let advert = WorkerAdvert(
    id: "id-\(name)", name: name,
    host: HostInfo(cpuCores: 8, memoryTotal: 64 * GB, platform: "linux", arch: "x64", hostname: name),
    gpus: gpus, diskFree: disk, slots: slots, labels: labels)
  return WorkerRecord(advert: advert, peer: Array(name.utf8), lastSeen: 0, online: online, drained: drained)
}

@Suite struct JobQueueTests {
  @Test func servesHigherPriorityFirstThenFIFO() {
    var queue = JobQueue()
    let keys: [LiveJob.QueueKey] = [
      .init(priority: 0, id: 1), .init(priority: 5, id: 2), .init(priority: 0, id: 3),
      .init(priority: 5, id: 4), .init(priority: -1, id: 5), .init(priority: 10, id: 6),
    ]
    for key in keys { queue.insert(key) }
    #expect(queue.keys.map(\.id) == [6, 2, 4, 1, 3, 5])
    #expect(queue.count == 6)
  }

  @Test func outOfOrderInsertKeepsFIFOWithinPriority() {
    var queue = JobQueue()
    // A requeued job (lower id) comes back behind later ones and must go to the front
    // of its priority again.
    for id in [3, 4, 5] as [Int64] { queue.insert(.init(priority: 0, id: id)) }
    queue.insert(.init(priority: 0, id: 1))
    queue.insert(.init(priority: 0, id: 2))
    #expect(queue.keys.map(\.id) == [1, 2, 3, 4, 5])
  }

  @Test func removeTakesOnlyTheKey() {
    var queue = JobQueue()
    for id in 1...5 as ClosedRange<Int64> { queue.insert(.init(priority: Int(id % 2), id: id)) }
    queue.remove(.init(priority: 1, id: 3))
    queue.remove(.init(priority: 0, id: 3))  // not there: no-op
    queue.remove(.init(priority: 1, id: 99))  // not there: no-op
    #expect(queue.keys.map(\.id) == [1, 5, 2, 4])
    queue.remove(.init(priority: 1, id: 5))
    #expect(queue.keys.map(\.id) == [1, 2, 4])
    #expect(!queue.isEmpty)
  }
}

@Suite struct JobQueueScanTests {
  @Test func scanMergesClassesInServiceOrderAndSkipsAClassAtOnce() {
    var queue = JobQueue()
    // Class 1: many identical big jobs; class 2: small ones interleaved, one urgent.
    for id in 1...1000 as ClosedRange<Int64> { queue.insert(.init(priority: 0, id: id, requirementClass: 1)) }
    for id in [1001, 1002, 1003] as [Int64] { queue.insert(.init(priority: 0, id: id, requirementClass: 2)) }
    queue.insert(.init(priority: 9, id: 1004, requirementClass: 2))
    queue.remove(.init(priority: 0, id: 1, requirementClass: 1))
    #expect(queue.count == 1003)
    var visited: [Int64] = []
    queue.scan { key in
      visited.append(key.id)
      return key.requirementClass == 1 ? .skipClass : .next
    }
    // The urgent one first, one visit for the whole big class, then the small ones.
    #expect(visited == [1004, 2, 1001, 1002, 1003])
    var first: [Int64] = []
    queue.scan { key in
      first.append(key.id)
      return first.count == 3 ? .stop : .next
    }
    #expect(first == [1004, 2, 3])
  }

  @Test func takingFromTheFrontKeepsOrderAcrossCompaction() {
    var queue = JobQueue()
    for id in 1...500 as ClosedRange<Int64> { queue.insert(.init(priority: 0, id: id, requirementClass: 1)) }
    for id in 1...300 as ClosedRange<Int64> { queue.remove(.init(priority: 0, id: id, requirementClass: 1)) }
    // A requeued job goes back to the front of its priority.
    queue.insert(.init(priority: 0, id: 7, requirementClass: 1))
    #expect(queue.keys.map(\.id) == [7] + Array(301...500))
    for id in 301...500 as ClosedRange<Int64> {
      queue.remove(.init(priority: 0, id: id, requirementClass: 1))
    }
    queue.remove(.init(priority: 0, id: 7, requirementClass: 1))
    #expect(queue.isEmpty && queue.keys.isEmpty)
  }
}

@Suite struct MatchingTests {
  @Test func bestFitPicksTheSmallestCardThatIsBigEnough() throws {
    let cap = capacity(gpus: [gpu(0, 80), gpu(1, 24), gpu(2, 48)])
    let placement = try Matching.place(Requirements(gpus: 1, vram: 24 * GB), on: cap).get()
    #expect(placement.gpuIndices == [1])
    #expect(placement.vramSlack == 0)
    let big = try Matching.place(Requirements(gpus: 1, vram: 40 * GB), on: cap).get()
    #expect(big.gpuIndices == [2])
    #expect(big.vramSlack == 8 * GB)
  }

  @Test func multiGPUTakesTheSmallestSufficientCards() throws {
    let cap = capacity(gpus: [gpu(0, 80), gpu(1, 24), gpu(2, 48), gpu(3, 24)])
    let placement = try Matching.place(Requirements(gpus: 2, vram: 20 * GB), on: cap).get()
    #expect(placement.gpuIndices == [1, 3])
    #expect(placement.vramSlack == 8 * GB)
  }

  @Test func vramAloneImpliesOneGPU() throws {
    let requirements = Requirements(vram: 16 * GB)
    #expect(requirements.effectiveGPUCount == 1)
    #expect(Requirements(gpuVendor: .amd).effectiveGPUCount == 1)
    #expect(Requirements().effectiveGPUCount == 0)
    #expect(Matching.place(requirements, on: capacity()) == .failure(.tooFewGPUs(have: 0)))
    #expect(try Matching.place(requirements, on: capacity(gpus: [gpu(0, 24)])).get().gpuIndices == [0])
  }

  @Test func reservedGPUsAreNeverShared() {
    let cap = capacity(gpus: [gpu(0, 80)], reserved: [0], slots: 4)
    #expect(Matching.place(Requirements(gpus: 1), on: cap) == .failure(.gpusBusy))
    #expect(MismatchReason.gpusBusy.isBusy)
    // A job without GPUs still fits beside it.
    #expect((try? Matching.place(Requirements(), on: cap).get())?.gpuIndices == [])
  }

  @Test func reservedBigCardLeavesOnlyTheSmallOne() {
    let cap = capacity(gpus: [gpu(0, 80), gpu(1, 24)], reserved: [1], slots: 2)
    #expect((try? Matching.place(Requirements(gpus: 1, vram: 10 * GB), on: cap).get())?.gpuIndices == [0])
    // Too little VRAM anywhere is static, not busy.
    let reason = Matching.place(Requirements(gpus: 1, vram: 100 * GB), on: cap)
    #expect(reason == .failure(.tooLittleVRAM(best: 80 * GB)))
    #expect(!MismatchReason.tooLittleVRAM(best: 0).isBusy)
  }

  @Test func diskLabelsMemoryAndVendor() {
    let cap = capacity(
      gpus: [gpu(0, 24)], disk: 100 * GB, memory: 32 * GB, labels: ["site": "studio", "tier": "a"])
    #expect(Matching.place(Requirements(disk: 101 * GB), on: cap) == .failure(.tooLittleDisk(free: 100 * GB)))
    #expect((try? Matching.place(Requirements(disk: 100 * GB), on: cap).get()) != nil)
    #expect(
      Matching.place(Requirements(labels: ["site": "home"]), on: cap)
        == .failure(.missingLabel("site=home")))
    #expect(
      Matching.place(Requirements(labels: ["gpu-room": "1"]), on: cap)
        == .failure(.missingLabel("gpu-room=1")))
    #expect((try? Matching.place(Requirements(labels: ["site": "studio"]), on: cap).get()) != nil)
    #expect(
      Matching.place(Requirements(memory: 33 * GB), on: cap) == .failure(.tooLittleMemory(total: 32 * GB)))
    #expect(Matching.place(Requirements(gpuVendor: .amd), on: cap) == .failure(.wrongVendor))
    #expect((try? Matching.place(Requirements(gpuVendor: .nvidia), on: cap).get())?.gpuIndices == [0])
    #expect(Matching.place(Requirements(), on: capacity(slots: 0)) == .failure(.noFreeSlot))
  }

  @Test func vendorFiltersBeforeVRAM() {
    let cap = capacity(gpus: [gpu(0, 80, vendor: .nvidia), gpu(1, 24, vendor: .amd)])
    #expect(
      (try? Matching.place(Requirements(gpuVendor: .amd, vram: 20 * GB), on: cap).get())?.gpuIndices == [1])
    #expect(
      Matching.place(Requirements(gpuVendor: .amd, vram: 40 * GB), on: cap)
        == .failure(.tooLittleVRAM(best: 24 * GB)))
  }
}

@Suite struct SchedulerPlanTests {
  @Test func jobGoesToTheTightestWorkerOnVRAM() {
    let assignments = plan(
      [job(1, Requirements(gpus: 1, vram: 24 * GB))],
      ["big": capacity(gpus: [gpu(0, 80)]), "small": capacity(gpus: [gpu(0, 24)])])
    #expect(assignments == [Assignment(jobID: 1, workerID: "small", gpuIndices: [0])])
  }

  @Test func eightyGBJobStillFindsTheBigCardAfterSmallJobs() {
    // A 24 GB job placed first must not take the 80 GB card the 80 GB job needs.
    let assignments = plan(
      [job(1, Requirements(gpus: 1, vram: 24 * GB)), job(2, Requirements(gpus: 1, vram: 80 * GB))],
      ["box": capacity(gpus: [gpu(0, 80), gpu(1, 24)], slots: 2)])
    #expect(
      assignments == [
        Assignment(jobID: 1, workerID: "box", gpuIndices: [1]),
        Assignment(jobID: 2, workerID: "box", gpuIndices: [0]),
      ])
  }

  @Test func gpusAreNotSharedWithinOnePass() {
    let assignments = plan(
      [job(1, Requirements(gpus: 1)), job(2, Requirements(gpus: 1)), job(3)],
      ["box": capacity(gpus: [gpu(0, 24)], slots: 3)])
    #expect(assignments.map(\.jobID) == [1, 3])
    #expect(assignments[0].gpuIndices == [0])
    #expect(assignments[1].gpuIndices == [])
  }

  @Test func alreadyReservedGPUsAreRespected() {
    let assignments = plan(
      [job(1, Requirements(gpus: 1))], ["box": capacity(gpus: [gpu(0, 24), gpu(1, 24)], reserved: [0])])
    #expect(assignments == [Assignment(jobID: 1, workerID: "box", gpuIndices: [1])])
  }

  @Test func diskIsReservedWithinOnePass() {
    let assignments = plan(
      [
        job(1, Requirements(disk: 60 * GB)), job(2, Requirements(disk: 60 * GB)),
        job(3, Requirements(disk: 40 * GB)),
      ],
      ["box": capacity(slots: 3, disk: 100 * GB)])
    #expect(assignments.map(\.jobID) == [1, 3])
  }

  @Test func labelsAndVendorSteerJobs() {
    let assignments = plan(
      [
        job(1, Requirements(labels: ["site": "studio"])),
        job(2, Requirements(gpuVendor: .amd)),
        job(3, Requirements(labels: ["site": "moon"])),
      ],
      [
        "home": capacity(gpus: [gpu(0, 24, vendor: .amd)], slots: 2, labels: ["site": "home"]),
        "studio": capacity(gpus: [gpu(0, 24)], slots: 2, labels: ["site": "studio"]),
      ])
    #expect(
      Set(assignments) == [
        Assignment(jobID: 1, workerID: "studio", gpuIndices: []),
        Assignment(jobID: 2, workerID: "home", gpuIndices: [0]),
      ])
  }

  @Test func bigJobThatFitsNowhereDoesNotBlockSmallOnes() {
    let assignments = plan(
      [
        job(1, priority: 10, Requirements(gpus: 1, vram: 80 * GB)),
        job(2, Requirements(gpus: 1, vram: 8 * GB)),
        job(3, priority: 10, Requirements(gpus: 1, vram: 80 * GB)),
        job(4),
      ],
      ["gpu-box": capacity(gpus: [gpu(0, 24)], slots: 2)])
    #expect(
      assignments == [
        Assignment(jobID: 2, workerID: "gpu-box", gpuIndices: [0]),
        Assignment(jobID: 4, workerID: "gpu-box", gpuIndices: []),
      ])
  }

  @Test func priorityThenFIFOWhenSlotsAreScarce() {
    let assignments = plan(
      [job(1), job(2, priority: 3), job(3), job(4, priority: 3)],
      ["a": capacity(slots: 1), "b": capacity(slots: 1)])
    #expect(assignments.map(\.jobID) == [2, 4])
  }

  @Test func tiesGoToTheLeastLoadedThenByName() {
    let loaded = plan([job(1)], ["a": capacity(slots: 1), "b": capacity(slots: 3)])
    #expect(loaded.map(\.workerID) == ["b"])
    let named = plan([job(1)], ["zeta": capacity(slots: 2), "alpha": capacity(slots: 2)])
    #expect(named.map(\.workerID) == ["alpha"])
    // Deterministic: the same input always yields the same plan.
    for _ in 0..<20 {
      #expect(plan([job(1), job(2)], ["x": capacity(slots: 1), "y": capacity(slots: 1)]).count == 2)
      #expect(plan([job(1)], ["zeta": capacity(slots: 2), "alpha": capacity(slots: 2)]) == named)
    }
  }

  @Test func noFreeSlotsMeansNoPlan() {
    #expect(plan([job(1)], ["a": capacity(slots: 0)]).isEmpty)
    #expect(plan([job(1)], [:]).isEmpty)
    #expect(plan([], ["a": capacity(slots: 2)]).isEmpty)
  }

  @Test func slotsAreCountedPerWorker() {
    let assignments = plan([job(1), job(2), job(3)], ["a": capacity(slots: 2)])
    #expect(assignments.map(\.jobID) == [1, 2])
  }

  @Test func manyJobsOfOneUnplaceableShapeAreSkippedCheaply() {
    var jobs = (1...1000).map { job(Int64($0), Requirements(gpus: 1, vram: 80 * GB)) }
    jobs.append(job(1001))
    let assignments = plan(jobs, ["a": capacity(gpus: [gpu(0, 24)], slots: 1)])
    #expect(assignments == [Assignment(jobID: 1001, workerID: "a", gpuIndices: [])])
  }
}

@Suite struct WaitReasonTests {
  @Test func namesTheLargestVRAMOnline() {
    let reason = Scheduler.waitReason(
      for: Requirements(gpus: 1, vram: 80 * GB),
      workers: [worker("laptop", gpus: [gpu(0, 8)]), worker("gpu-box", gpus: [gpu(0, 24), gpu(1, 12)])])
    #expect(reason == "needs 1 GPU with ≥ 80 GB free; best online: gpu-box, 24 GB")
  }

  @Test func vendorIsPartOfTheNeed() {
    let reason = Scheduler.waitReason(
      for: Requirements(gpuVendor: .amd, vram: 80 * GB),
      workers: [worker("nv", gpus: [gpu(0, 80)]), worker("rocm", gpus: [gpu(0, 48, vendor: .amd)])])
    #expect(reason == "needs 1 amd GPU with ≥ 80 GB free; best online: rocm, 48 GB")
    let none = Scheduler.waitReason(
      for: Requirements(gpuVendor: .amd), workers: [worker("nv", gpus: [gpu(0, 80)])])
    #expect(none == "needs 1 amd GPU; no online worker has a matching GPU")
    let noGPU = Scheduler.waitReason(for: Requirements(gpus: 2), workers: [worker("cpu")])
    #expect(noGPU == "needs 2 GPUs; no online worker has a GPU")
  }

  @Test func offlineAndDrainedWorkers() {
    #expect(Scheduler.waitReason(for: Requirements(), workers: []) == "no worker is online")
    #expect(
      Scheduler.waitReason(for: Requirements(), workers: [worker("a", online: false)])
        == "no worker is online")
    #expect(
      Scheduler.waitReason(
        for: Requirements(), workers: [worker("a", drained: true), worker("b", online: false)])
        == "every online worker is drained")
  }

  @Test func busyWorkersAreNamed() {
    var b = worker("b", gpus: [gpu(0, 80)])
    b.holdings[AttemptRef(jobID: "1", attempt: 1)] = Holding(gpuIndices: [0], disk: 0, active: true)
    var a = worker("a", gpus: [gpu(0, 80)])
    a.holdings[AttemptRef(jobID: "2", attempt: 1)] = Holding(gpuIndices: [0], disk: 0, active: false)
    let reason = Scheduler.waitReason(
      for: Requirements(gpus: 1, vram: 40 * GB), workers: [b, a, worker("small", gpus: [gpu(0, 8)])])
    #expect(reason == "waiting for a free slot on a, b")
  }

  @Test func diskAndLabelReasons() {
    let disk = Scheduler.waitReason(
      for: Requirements(disk: 200 * GB), workers: [worker("a", disk: 100 * GB)])
    #expect(disk.hasPrefix("needs \(ByteSize(bytes: 200 * GB)) disk; most disk free: a, "))
    let label = Scheduler.waitReason(
      for: Requirements(labels: ["site": "studio"]), workers: [worker("a", labels: ["site": "home"])])
    #expect(label == "needs label site=studio; no online worker has label site=studio")
  }

  @Test func gpuJobBlockedByLabelSaysSo() {
    // The worker has plenty of VRAM; only the label is missing. The reason should
    // name the label, not the VRAM.
    let reason = Scheduler.waitReason(
      for: Requirements(gpus: 1, vram: 24 * GB, labels: ["site": "studio"]),
      workers: [worker("gpu-box", gpus: [gpu(0, 80)], labels: ["site": "home"])])
    #expect(reason.hasSuffix("no online worker has label site=studio"))
  }
}

@Suite struct AgingTests {
  /// The jobs one scheduling pass places on `box` at `now`, with a 600 s aging threshold.
  private func placed(_ jobs: [LiveJob], on box: WorkerCapacity, at now: Double) -> [Int64] {
    let (queue, table) = queued(jobs)
    return Scheduler.plan(
      queue: queue, jobs: table, capacities: ["box": box], names: ["box": "box"], now: now, agingSeconds: 600
    ).map(\.jobID)
  }

  /// A 2-GPU job on a 2-GPU box where 1-GPU jobs keep coming: before it ages, small jobs
  /// backfill the free GPU; once aged, the box is held for it and drains.
  @Test func anAgedBigJobStopsBackfillOnTheWorkerItNeeds() {
    var box = capacity(gpus: [gpu(0, 24), gpu(1, 24)], slots: 2)
    box.reservedGPUIndices = [0]
    box.freeSlots = 1
    let jobs = [job(1, Requirements(gpus: 2)), job(2, Requirements(gpus: 1))]
    #expect(placed(jobs, on: box, at: 100) == [2])
    #expect(placed(jobs, on: box, at: 700).isEmpty)
  }

  @Test func anAgedJobHoldsOnlyOneWorkerAndOthersStillBackfill() {
    var box = capacity(gpus: [gpu(0, 24), gpu(1, 24)], slots: 2)
    box.reservedGPUIndices = [0]
    box.freeSlots = 1
    let other = capacity(gpus: [gpu(0, 24)], slots: 1)
    let (queue, table) = queued([job(1, Requirements(gpus: 2)), job(2, Requirements(gpus: 1))])
    let plan = Scheduler.plan(
      queue: queue, jobs: table, capacities: ["box": box, "other": other],
      names: ["box": "box", "other": "other"],
      now: 700, agingSeconds: 600)
    #expect(plan == [Assignment(jobID: 2, workerID: "other", gpuIndices: [0])])
  }

  /// Disk the running jobs reserved comes back when they end: an aged job that needs it
  /// holds the worker like one that needs its GPUs, instead of being taken for one that
  /// can never fit while smaller jobs keep the disk reserved.
  @Test func anAgedJobCountsOnTheDiskRunningJobsReserved() {
    // 100 GB free on the box, 80 GB of it reserved by the job it runs.
    var box = capacity(gpus: [], slots: 4, disk: 20 * GB)
    box.reservedDisk = 80 * GB
    box.freeSlots = 3
    let jobs = [job(1, Requirements(disk: 60 * GB)), job(2, Requirements(disk: 1 * GB))]
    #expect(placed(jobs, on: box, at: 100) == [2])
    #expect(placed(jobs, on: box, at: 700).isEmpty)
    // More than the box has even when idle: nothing is held for it.
    #expect(
      placed([job(1, Requirements(disk: 150 * GB)), job(2, Requirements(disk: 1 * GB))], on: box, at: 700)
        == [2])
  }

  @Test func aJobThatCanNeverFitReservesNothing() {
    let box = capacity(gpus: [gpu(0, 24)], slots: 2)
    #expect(
      placed([job(1, Requirements(gpus: 4)), job(2, Requirements(gpus: 1))], on: box, at: 10_000) == [2])
  }
}
