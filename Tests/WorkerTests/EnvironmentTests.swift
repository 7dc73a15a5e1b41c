import Foundation
import Shared
import Synchronization
import Testing

@testable import Worker

@Suite struct EnvironmentTests {
  static let host: [String: String] = [
    "PATH": "/host/bin:/usr/bin", "LANG": "en_US.UTF-8", "TZ": "Europe/Paris", "TERM": "xterm",
    "PYTHONPATH": "/host/site", "PINPOOL_TEST_HOST_SECRET": "must-not-leak", "HOME": "/home/host",
    "HF_TOKEN": "hf_secret", "OPERATOR_PROXY": "http://proxy:3128", "CUDA_VISIBLE_DEVICES": "0,1,2,3",
  ]

  @Test func allowlistOnly() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let root = dir.path
    let ws = dir.file("jobs/j-1")
    let env = JobEnvironment.make(
      workerRoot: root, workspace: ws, jobVariables: ["GREETING": "hi"], gpuIndices: [0, 2],
      gpuVendor: .nvidia, runtimeBin: [root + "/runtime/bin"], passThrough: ["OPERATOR_PROXY", "NOT_SET"],
      hostEnvironment: Self.host)
    #expect(env["PATH"] == root + "/runtime/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    #expect(env["LANG"] == "en_US.UTF-8")
    #expect(env["TZ"] == "Europe/Paris")
    #expect(env["TERM"] == "xterm")
    #expect(env["PYTHONPATH"] == nil)
    #expect(env["PINPOOL_TEST_HOST_SECRET"] == nil)
    #expect(env["HF_TOKEN"] == nil)
    #expect(env["NOT_SET"] == nil)
    #expect(env["OPERATOR_PROXY"] == "http://proxy:3128")
    #expect(env["GREETING"] == "hi")
    #expect(!env.values.contains { $0.contains("must-not-leak") || $0.contains("/host/") })
    #expect(env["HOME"] == ws + "/.home")
    #expect(env["TMPDIR"] == ws + "/.tmp")
    #expect(env["XDG_CACHE_HOME"] == ws + "/.home/.cache")
    #expect(env["XDG_CONFIG_HOME"] == ws + "/.home/.config")
    #expect(env["XDG_DATA_HOME"] == ws + "/.home/.local/share")
    #expect(env["PIP_CACHE_DIR"] == root + "/cache/pip")
    #expect(env["UV_CACHE_DIR"] == root + "/cache/uv")
    #expect(env["HF_HOME"] == root + "/cache/hf")
    #expect(env["TORCH_HOME"] == root + "/cache/torch")
    #expect(env["npm_config_cache"] == root + "/cache/npm")
    #expect(env["PYTHONNOUSERSITE"] == "1")
    #expect(env["PIP_DISABLE_PIP_VERSION_CHECK"] == "1")
    #expect(env["PYTHONUNBUFFERED"] == "1")
    #expect(env["PINPOOL_WORKSPACE"] == ws)
    #expect(env["CUDA_VISIBLE_DEVICES"] == "0,2")
    #expect(env["NVIDIA_VISIBLE_DEVICES"] == "0,2")
    #expect(env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID")
    var isDirectory: ObjCBool = false
    #expect(
      FileManager.default.fileExists(atPath: ws + "/.home", isDirectory: &isDirectory)
        && isDirectory.boolValue)
    #expect(FileManager.default.fileExists(atPath: ws + "/.tmp"))
    for cache in ["pip", "uv", "hf", "torch", "npm"] {
      #expect(FileManager.default.fileExists(atPath: root + "/cache/" + cache), "\(cache)")
    }
  }

  /// A reused workspace has its HOME and TMPDIR already; a new one gets them made. Each
  /// worker root gets its own caches.
  @Test func foldersAreMadeWhereTheyMayBeMissing() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    for (index, reused) in [false, true].enumerated() {
      let root = dir.file("root-\(index)")
      let ws = root + "/jobs/j-1"
      try FileManager.default.createDirectory(atPath: ws, withIntermediateDirectories: true)
      _ = JobEnvironment.make(
        workerRoot: root, workspace: ws, jobVariables: [:], gpuIndices: [], gpuVendor: nil, runtimeBin: [],
        passThrough: [], hostEnvironment: [:], workspaceFoldersExist: reused)
      #expect(FileManager.default.fileExists(atPath: ws + "/.home") == !reused)
      #expect(FileManager.default.fileExists(atPath: ws + "/.tmp") == !reused)
      #expect(FileManager.default.fileExists(atPath: root + "/cache/pip"))
    }
  }

  @Test func noGPUsHidesAll() {
    let env = JobEnvironment.make(
      workerRoot: "/r", workspace: "/r/jobs/a-1", jobVariables: [:], gpuIndices: [], gpuVendor: nil,
      runtimeBin: [], passThrough: [], hostEnvironment: [:], createDirectories: false)
    #expect(env["CUDA_VISIBLE_DEVICES"] == "")
    #expect(env["NVIDIA_VISIBLE_DEVICES"] == "void")
    #expect(env["HIP_VISIBLE_DEVICES"] == "-1")
    #expect(env["LANG"] == "C.UTF-8")
    #expect(env["TZ"] == nil)
    #expect(env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  }

  @Test func amdAndMIG() {
    let amd = JobEnvironment.make(
      workerRoot: "/r", workspace: "/w", jobVariables: [:], gpuIndices: [1], gpuVendor: .amd, runtimeBin: [],
      passThrough: [], hostEnvironment: [:], createDirectories: false)
    #expect(amd["HIP_VISIBLE_DEVICES"] == "1")
    let mig = JobEnvironment.make(
      workerRoot: "/r", workspace: "/w", jobVariables: [:], gpuIndices: [2], gpuVendor: .nvidia,
      runtimeBin: [],
      passThrough: [], hostEnvironment: [:], visibleDevices: ["MIG-5c8a4e3b"], createDirectories: false)
    #expect(mig["CUDA_VISIBLE_DEVICES"] == "MIG-5c8a4e3b")
  }

  @Test func jobCannotWidenItsGPUs() {
    let env = JobEnvironment.make(
      workerRoot: "/r", workspace: "/w",
      jobVariables: ["CUDA_VISIBLE_DEVICES": "0,1,2,3", "PINPOOL_WORKSPACE": "/"],
      gpuIndices: [1], gpuVendor: .nvidia, runtimeBin: [], passThrough: ["CUDA_VISIBLE_DEVICES"],
      hostEnvironment: Self.host, createDirectories: false)
    #expect(env["CUDA_VISIBLE_DEVICES"] == "1")
    #expect(env["PINPOOL_WORKSPACE"] == "/w")
  }

  @Test func stepEnv() {
    let base = ["PATH": "/a:/b", "KEEP": "k", "DROP": "d"]
    let env = JobEnvironment.applying(
      stepEnv: [
        "PATH": ["/x/tools", "/y"], "NEW_LIST": ["/only"], "GREETING": "hi", "COUNT": 3, "RATIO": 0.5,
        "FLAG": true, "DROP": .null, "OBJ": ["a": 1],
      ], to: base)
    #expect(env["PATH"] == "/x/tools:/y:/a:/b")
    #expect(env["NEW_LIST"] == "/only")
    #expect(env["GREETING"] == "hi")
    #expect(env["COUNT"] == "3")
    #expect(env["RATIO"] == "0.5")
    #expect(env["FLAG"] == "true")
    #expect(env["DROP"] == nil)
    #expect(env.keys.contains("DROP") == false)
    #expect(env["KEEP"] == "k")
    #expect(env["OBJ"] == #"{"a":1}"#)
  }

  @Test func activateVenv() {
    let env = VenvBuilder.activate(
      venvPath: "/w/app/env", env: ["PATH": "/usr/bin:/bin", "PYTHONHOME": "/host/python"])
    #expect(env["VIRTUAL_ENV"] == "/w/app/env")
    #expect(env["PATH"] == "/w/app/env/bin:/usr/bin:/bin")
    #expect(env["PYTHONHOME"] == nil)
  }

  @Test func venvWithUV() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    // A stand-in uv that records its arguments and makes the interpreter.
    try dir.writeExecutable(
      "runtime/uv",
      """
      #!/bin/sh
      echo "fake-uv $*"
      mkdir -p "$3/bin" && printf '#!/bin/sh\\n' > "$3/bin/python" && chmod +x "$3/bin/python"
      """)
    let lines = LineCollector()
    let bin = try await VenvBuilder.ensure(
      venvPath: dir.file("ws/app/env"), runtimeBin: [dir.file("runtime")],
      environment: ["PATH": "/usr/bin:/bin"],
      log: { lines.append($0) })
    #expect(bin == dir.file("ws/app/env/bin"))
    #expect(lines.all == ["fake-uv venv --seed \(dir.file("ws/app/env"))"])
    // Present already: nothing runs.
    _ = try await VenvBuilder.ensure(
      venvPath: dir.file("ws/app/env"), runtimeBin: [dir.file("runtime")], environment: [:],
      log: { lines.append($0) })
    #expect(lines.all.count == 1)
  }

  @Test func venvFailureCarriesOutput() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.writeExecutable("runtime/uv", "#!/bin/sh\necho 'error: no interpreter found' >&2\nexit 2\n")
    do {
      _ = try await VenvBuilder.ensure(
        venvPath: dir.file("env"), runtimeBin: [dir.file("runtime")], environment: ["PATH": "/usr/bin:/bin"],
        log: { _ in })
      Issue.record("expected a failure")
    } catch {
      #expect("\(error)".contains("no interpreter found"))
      #expect("\(error)".contains("exited(2)"))
    }
  }

  @Test func venvWithoutAnyTool() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    await #expect(throws: VenvError.self) {
      _ = try await VenvBuilder.ensure(
        venvPath: dir.file("env"), runtimeBin: [dir.file("runtime")], environment: ["PATH": dir.path],
        log: { _ in })
    }
  }
}

/// Collects lines from callbacks that run on other threads.
final class LineCollector: Sendable {
  private let lines = Mutex<[String]>([])
  func append(_ line: String) { lines.withLock { $0.append(line) } }
  var all: [String] { lines.withLock { $0 } }
}
