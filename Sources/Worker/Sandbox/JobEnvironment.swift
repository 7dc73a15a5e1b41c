import Foundation
import Shared
import Synchronization

/// Builds a job's process environment from an allowlist. Nothing reaches a job from the
/// worker's own environment unless it is named here or passed through by the operator:
/// a host `PYTHONPATH`, a token in the worker's shell, or the host's `~/.cache` would make
/// jobs behave differently per machine and leak secrets into logs.
public struct JobEnvironment {
  public static let systemBins = [
    "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
  ]

  /// Passed through when set: the machine's TLS trust and proxy settings.
  public static let networkVariables = [
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
    "no_proxy", "all_proxy",
  ]

  /// Variables that decide which GPUs a job sees; neither the operator's pass-through nor
  /// the job's own variables may change them, so a job cannot reach GPUs it was not given.
  public static let gpuVariables: Set<String> = [
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
  ]

  /// - Parameters:
  ///   - jobVariables: the job's own variables; they override everything but the GPU
  ///     selection and `PINPOOL_WORKSPACE`.
  ///   - gpuIndices: the worker's indices of the GPUs given to the job (nvidia-smi order).
  ///   - visibleDevices: device names to expose instead of the indices — MIG instances
  ///     are only addressable by their `MIG-…` uuid.
  ///   - passThrough: names the operator chose to pass from the worker's environment.
  ///   - createDirectories: create HOME, TMPDIR and the cache folders; tests that only
  ///     inspect the values can switch it off.
  ///   - workspaceFoldersExist: HOME and TMPDIR are known to exist (`Workspace.reused`).
  public static func make(
    workerRoot: String, workspace: String, jobVariables: [String: String], gpuIndices: [Int],
    gpuVendor: GPUVendor?, runtimeBin: [String], passThrough: [String],
    hostEnvironment: [String: String] = workerEnvironment,
    visibleDevices: [String]? = nil, createDirectories: Bool = true, workspaceFoldersExist: Bool = false
  ) -> [String: String] {
    var env: [String: String] = [:]
    env["PATH"] = (runtimeBin + systemBins).joined(separator: ":")
    env["LANG"] = nonEmpty(hostEnvironment["LANG"]) ?? "C.UTF-8"
    for name in ["TZ", "TERM"] {
      if let value = nonEmpty(hostEnvironment[name]) { env[name] = value }
    }

    let home = workspace + "/.home"
    let tmp = workspace + "/.tmp"
    let cache = workerRoot + "/cache"
    // HOME and TMPDIR exist before the job starts; the XDG folders inside HOME are made
    // by whatever writes there (the XDG spec asks writers to create them), so a job that
    // prints a line does not pay for six folders. On ext4 every folder made and removed
    // again makes the next inode allocation scan past it for a while: a dozen per job
    // were a third of a worker's CPU when dispatching trivial jobs. A reused workspace
    // has its HOME and TMPDIR already, and the shared caches are made once per worker
    // (the tools that use them make them again if an operator removes one): seven
    // mkdir(2)s that found a folder were 1.5% of a busy worker.
    let directories: KeyValuePairs<String, (path: String, create: Folder)> = [
      "HOME": (home, .workspace),
      "TMPDIR": (tmp, .workspace),
      "XDG_CACHE_HOME": (home + "/.cache", .none),
      "XDG_CONFIG_HOME": (home + "/.config", .none),
      "XDG_DATA_HOME": (home + "/.local/share", .none),
      "XDG_STATE_HOME": (home + "/.local/state", .none),
      "PIP_CACHE_DIR": (cache + "/pip", .cache),
      "UV_CACHE_DIR": (cache + "/uv", .cache),
      "HF_HOME": (cache + "/hf", .cache),
      "TORCH_HOME": (cache + "/torch", .cache),
      "npm_config_cache": (cache + "/npm", .cache),
    ]
    for (name, folder) in directories {
      env[name] = folder.path
      guard createDirectories else { continue }
      switch folder.create {
      case .none: continue
      case .workspace where workspaceFoldersExist: continue
      case .cache where madeCaches.withLock({ $0.contains(folder.path) }): continue
      case .workspace, .cache:
        let there =
          mkdir(folder.path, 0o755) == 0 || errno == EEXIST
          || (try? FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true))
            != nil
        if there, folder.create == .cache { madeCaches.withLock { _ = $0.insert(folder.path) } }
      }
    }
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PINPOOL_WORKSPACE"] = workspace

    // How this machine reaches the network (trusted CAs, proxies) is the machine's, not
    // a secret, and without it no job could download a wheel behind a corporate proxy.
    for name in networkVariables {
      if let value = nonEmpty(hostEnvironment[name]) { env[name] = value }
    }
    for name in passThrough where !gpuVariables.contains(name) && name != "PINPOOL_WORKSPACE" {
      if let value = hostEnvironment[name] { env[name] = value }
    }
    for (name, value) in jobVariables where !gpuVariables.contains(name) && name != "PINPOOL_WORKSPACE" {
      env[name] = value
    }

    // nvidia-smi numbers GPUs by PCI bus; CUDA's default order is "fastest first", so
    // without this the index the scheduler gave could name a different card.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    let devices = visibleDevices ?? gpuIndices.map(String.init)
    if devices.isEmpty {
      // An empty CUDA_VISIBLE_DEVICES hides every GPU; "void" is the container toolkit's
      // spelling of none; -1 is no valid HIP device.
      env["CUDA_VISIBLE_DEVICES"] = ""
      env["NVIDIA_VISIBLE_DEVICES"] = "void"
      env["HIP_VISIBLE_DEVICES"] = "-1"
    } else {
      let list = devices.joined(separator: ",")
      env["CUDA_VISIBLE_DEVICES"] = list
      env["NVIDIA_VISIBLE_DEVICES"] = list
      env["HIP_VISIBLE_DEVICES"] = gpuVendor == .nvidia ? "-1" : list
    }
    return env
  }

  private enum Folder { case none, workspace, cache }

  /// Cache folders this process made or found (per worker root; tests run several).
  private static let madeCaches = Mutex<Set<String>>([])

  /// Applies a `shell.run` step's `env` parameter. Strings, numbers and booleans set the
  /// variable; an array is prepended to the current value with `:` (Pinokio's way of
  /// adding to `PATH`); `null` removes the variable; an object is set to its JSON text.
  public static func applying(stepEnv: [String: JSONValue], to env: [String: String]) -> [String: String] {
    var result = env
    for (name, value) in stepEnv.sorted(by: { $0.key < $1.key }) {
      switch value {
      case .null:
        result[name] = nil
      case .array(let items):
        let added = items.filter { !$0.isNull }.map(\.interpolationText).filter { !$0.isEmpty }
        let existing = nonEmpty(result[name]).map { [$0] } ?? []
        result[name] = (added + existing).joined(separator: ":")
      case .object:
        result[name] = value.serialized()
      case .string, .number, .bool:
        result[name] = value.interpolationText
      }
    }
    return result
  }

  /// The worker's own environment, read once: building the dictionary from `environ`
  /// again for every job was a noticeable part of starting a trivial one, and nothing
  /// changes a running worker's environment.
  public static let workerEnvironment = ProcessInfo.processInfo.environment

  private static func nonEmpty(_ value: String?) -> String? {
    guard let value, !value.isEmpty else { return nil }
    return value
  }
}
