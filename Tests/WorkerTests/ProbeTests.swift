import Foundation
import Shared
import Testing

@testable import Worker

@Suite struct NvidiaSMIParserTests {
  @Test func noGPUs() {
    let result = NvidiaSMIParser.parse(csv: "")
    #expect(result.gpus.isEmpty)
    #expect(result.warnings.isEmpty)
  }

  @Test func oneGPU() throws {
    let csv =
      "0, GPU-3b2f5c1e-8d4a-4f7e-9c1b-2a6d8e0f1c3d, NVIDIA GeForce RTX 4090, 24564, 23817, 550.54.14, 8.9\n"
    let result = NvidiaSMIParser.parse(csv: csv)
    #expect(result.warnings.isEmpty)
    let gpu = try #require(result.gpus.first)
    #expect(result.gpus.count == 1)
    #expect(gpu.index == 0)
    #expect(gpu.vendor == .nvidia)
    #expect(gpu.model == "NVIDIA GeForce RTX 4090")
    #expect(gpu.uuid == "GPU-3b2f5c1e-8d4a-4f7e-9c1b-2a6d8e0f1c3d")
    #expect(gpu.vramTotal == 24564 * 1024 * 1024)
    #expect(gpu.vramFree == 23817 * 1024 * 1024)
    #expect(gpu.driver == "550.54.14")
    #expect(gpu.computeCapability == "8.9")
  }

  @Test func eightGPUs() {
    let csv = (0..<8).map { i in
      "\(i), GPU-0000000\(i)-1111-2222-3333-44444444444\(i), NVIDIA H100 80GB HBM3, 81559, \(81000 - i * 1000), 535.161.08, 9.0"
    }.joined(separator: "\n")
    let result = NvidiaSMIParser.parse(csv: csv)
    #expect(result.warnings.isEmpty)
    #expect(result.gpus.map(\.index) == Array(0..<8))
    #expect(result.gpus.allSatisfy { $0.model == "NVIDIA H100 80GB HBM3" && $0.computeCapability == "9.0" })
    #expect(result.gpus[7].vramFree == Int64(81000 - 7000) * 1024 * 1024)
  }

  @Test func migInstancesReplaceTheirParent() {
    // GPU 0 is in MIG mode (memory.free unavailable) with two 3g.40gb instances; GPU 1 is whole.
    let csv = """
      0, GPU-a1b2c3d4-e5f6-7a8b-9c0d-e1f2a3b4c5d6, NVIDIA A100-SXM4-80GB, 81920, [N/A], 535.104.05, 8.0
      1, GPU-b2c3d4e5-f6a7-8b9c-0d1e-f2a3b4c5d6e7, NVIDIA A100-SXM4-80GB, 81920, 81050, 535.104.05, 8.0
      0:1, MIG-5c8a4e3b-7d2f-5a1e-9b6c-3f8d2e1a0b9c, NVIDIA A100-SXM4-80GB MIG 3g.40gb, 40192, 40100, 535.104.05, 8.0
      0:2, MIG-9e1d7c6b-2a4f-5e8d-8c3b-6a0f9e2d1c4b, NVIDIA A100-SXM4-80GB MIG 3g.40gb, 40192, 40192, 535.104.05, 8.0
      """
    let result = NvidiaSMIParser.parse(csv: csv)
    #expect(result.gpus.count == 3)
    #expect(result.gpus[0].index == 1)
    #expect(result.gpus[0].uuid == "GPU-b2c3d4e5-f6a7-8b9c-0d1e-f2a3b4c5d6e7")
    #expect(result.gpus[1].uuid == "MIG-5c8a4e3b-7d2f-5a1e-9b6c-3f8d2e1a0b9c")
    #expect(result.gpus[1].model == "NVIDIA A100-SXM4-80GB MIG 3g.40gb")
    #expect(result.gpus[1].vramTotal == 40192 * 1024 * 1024)
    #expect(result.gpus[1].vramFree == 40100 * 1024 * 1024)
    #expect(result.gpus[1].index == 2)
    #expect(result.gpus[2].index == 3)
    #expect(result.warnings.count == 1)
    #expect(result.warnings.first?.contains("MIG") == true)
  }

  @Test func notAvailableFields() throws {
    // Old drivers cannot report compute_cap.
    let result = NvidiaSMIParser.parse(csv: "0, GPU-1, Tesla K80, 11441, 11379, 470.223.02, [N/A]")
    let gpu = try #require(result.gpus.first)
    #expect(gpu.computeCapability == nil)
    #expect(result.warnings.isEmpty)
    let freeMissing = NvidiaSMIParser.parse(csv: "0, GPU-1, Tesla T4, 15360, [N/A], 535.1, 7.5")
    #expect(freeMissing.gpus.first?.vramFree == Int64(15360) * 1024 * 1024)
    #expect(freeMissing.warnings.count == 1)
  }

  @Test func commasInTheName() {
    let result = NvidiaSMIParser.parse(csv: "0, GPU-1, NVIDIA RTX A6000, Rev 2, 49140, 49000, 550.1, 8.6")
    #expect(result.gpus.first?.model == "NVIDIA RTX A6000, Rev 2")
    #expect(result.gpus.first?.vramTotal == Int64(49140) * 1024 * 1024)
  }

  @Test func malformedLinesAreSkippedWithWarnings() {
    let csv = """
      0, GPU-1, NVIDIA GeForce RTX 3090, 24576, 24000, 550.1, 8.6
      this is not csv
      x, GPU-2, NVIDIA GeForce RTX 3090, 24576, 24000, 550.1, 8.6
      2, GPU-3, NVIDIA GeForce RTX 3090, lots, 24000, 550.1, 8.6
      3, GPU-4, NVIDIA GeForce RTX 3090, 24576, some, 550.1, 8.6
      4, GPU-5, NVIDIA GeForce RTX 3090, 24576, 1000, 550.1, 8.6
      """
    let result = NvidiaSMIParser.parse(csv: csv)
    #expect(result.gpus.map(\.index) == [0, 4])
    #expect(result.warnings.count == 4)
    #expect(result.warnings[0].contains("line 2") && result.warnings[0].contains("this is not csv"))
    #expect(result.warnings[0].contains("expected 7"))
    #expect(result.warnings[1].contains("line 3") && result.warnings[1].contains("index 'x'"))
    #expect(result.warnings[2].contains("memory.total 'lots'"))
    #expect(result.warnings[3].contains("memory.free 'some'"))
  }
}

@Suite struct ROCmSMIParserTests {
  static let mi210 = """
    {"card0": {"Card Series": "AMD Instinct MI210", "Card Model": "0x740f", "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "Card SKU": "D67301V", "Subsystem ID": "0x0c34", "Device Rev": "0x02", "Node ID": "2", "GUID": "11111", "GFX Version": "gfx90a", "VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10960896"}}
    """

  @Test func oneAMDGPU() throws {
    let result = ROCmSMIParser.parse(json: Self.mi210)
    #expect(result.warnings.isEmpty)
    let gpu = try #require(result.gpus.first)
    #expect(gpu.vendor == .amd)
    #expect(gpu.index == 0)
    #expect(gpu.model == "AMD Instinct MI210")
    #expect(gpu.vramTotal == 68_702_699_520)
    #expect(gpu.vramFree == 68_702_699_520 - 10_960_896)
    #expect(gpu.computeCapability == "gfx90a")
  }

  @Test func olderFieldSpellingAndLeadingWarning() {
    let json = """
      WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status

      {"card1": {"Card series": "Radeon RX 7900 XTX", "VRAM Total Memory (B)": "25753026560"}, "system": {"Driver version": "6.7.0"}}
      """
    let result = ROCmSMIParser.parse(json: json)
    #expect(result.gpus.first?.index == 1)
    #expect(result.gpus.first?.model == "Radeon RX 7900 XTX")
    #expect(result.gpus.first?.vramFree == 25_753_026_560)
    #expect(result.gpus.first?.driver == "6.7.0")
  }

  @Test func malformedOutput() {
    #expect(ROCmSMIParser.parse(json: "").gpus.isEmpty)
    let broken = ROCmSMIParser.parse(json: "{\"card0\": {")
    #expect(broken.gpus.isEmpty)
    #expect(broken.warnings.first?.contains("not valid JSON") == true)
    let noVRAM = ROCmSMIParser.parse(
      json: #"{"card0": {"Card Series": "MI100"}, "card1": {"VRAM Total Memory (B)": "1"}}"#)
    #expect(noVRAM.gpus.isEmpty)
    #expect(noVRAM.warnings.count == 2)
    #expect(noVRAM.warnings.contains { $0.contains("card0") && $0.contains("VRAM Total Memory") })
    #expect(noVRAM.warnings.contains { $0.contains("card1") && $0.contains("product name") })
  }
}

@Suite struct GPUProbeTests {
  @Test func runsNvidiaSMIFromPath() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.writeExecutable(
      "nvidia-smi",
      """
      #!/bin/sh
      case "$*" in *--query-gpu=index,uuid,name,memory.total,memory.free,driver_version,compute_cap*) ;; *) exit 9;; esac
      echo "0, GPU-1, NVIDIA L4, 23034, 22000, 550.1, 8.9"
      """)
    // A generous timeout: integration suites running beside this one load the machine.
    let result = await GPUProbe.probe(path: dir.path, timeout: .seconds(120))
    #expect(result.gpus.map(\.model) == ["NVIDIA L4"])
    #expect(result.warnings.isEmpty)
  }

  @Test func failingToolIsAWarning() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.writeExecutable(
      "nvidia-smi",
      "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n"
    )
    // A generous timeout: integration suites running beside this one load the machine.
    let result = await GPUProbe.probe(path: dir.path, timeout: .seconds(120))
    #expect(result.gpus.isEmpty)
    #expect(result.warnings.first?.contains("could not communicate") == true)
  }

  @Test func hungToolTimesOut() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.writeExecutable("nvidia-smi", "#!/bin/sh\nsleep 600\n")
    let start = ContinuousClock.now
    let result = await GPUProbe.probe(path: dir.path, timeout: .milliseconds(300))
    // Bounded, not tight: under a loaded CI machine the kill and reap take a while.
    #expect(ContinuousClock.now - start < .seconds(30))
    #expect(result.gpus.isEmpty)
    #expect(result.warnings.first?.contains("did not answer") == true)
  }

  @Test func noToolsNoGPUs() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    // A generous timeout: integration suites running beside this one load the machine.
    let result = await GPUProbe.probe(path: dir.path, timeout: .seconds(120))
    #expect(result.gpus.isEmpty && result.warnings.isEmpty)
  }
}

@Suite struct HostProbeTests {
  @Test func facts() {
    let facts = HostProbe.facts()
    #expect(facts.cpuCores >= 1)
    #expect(facts.memoryTotal > 64 * 1024 * 1024)
    #expect(facts.platform == "linux")
    #expect(["x64", "arm64"].contains(facts.arch))
    #expect(!facts.hostname.isEmpty)
  }

  @Test func meminfoAndArchNames() {
    #expect(HostProbe.parseMemTotal("MemTotal:       16318792 kB\nMemFree: 1 kB\n") == 16_318_792)
    #expect(HostProbe.memoryTotal(meminfo: "MemTotal: 2 kB") == 2048)
    #expect(HostProbe.nodeArch(machine: "x86_64") == "x64")
    #expect(HostProbe.nodeArch(machine: "aarch64") == "arm64")
  }

  @Test func diskFree() {
    #expect(HostProbe.diskFree(at: FileManager.default.temporaryDirectory.path) > 0)
    #expect(HostProbe.diskFree(at: "/does/not/exist/at/all") == 0)
  }
}
