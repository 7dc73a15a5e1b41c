import Foundation
import Shared
import Subprocess

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

public struct GPUProbeResult: Sendable {
  public var gpus: [GPU]
  public var warnings: [String]

  public init(gpus: [GPU], warnings: [String]) {
    self.gpus = gpus
    self.warnings = warnings
  }
}

/// Asks the vendor tools which GPUs this machine has. The probe never throws: a machine
/// whose tools are missing, broken or hung is a machine with no GPUs plus a warning the
/// operator can read, and the worker still serves CPU jobs.
public enum GPUProbe {
  static let nvidiaArguments = [
    "--query-gpu=index,uuid,name,memory.total,memory.free,driver_version,compute_cap",
    "--format=csv,noheader,nounits",
  ]
  static let rocmArguments = ["--showproductname", "--showmeminfo", "vram", "--json"]

  /// - Parameters:
  ///   - path: the `PATH` to look for `nvidia-smi` and `rocm-smi` in.
  ///   - timeout: how long a tool may run; a hung driver must not stop the worker starting.
  public static func probe(
    path: String? = ProcessInfo.processInfo.environment["PATH"],
    timeout: Duration = .seconds(5)
  ) async -> GPUProbeResult {
    let directories = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
    if let nvidia = Executables.find("nvidia-smi", in: directories) {
      return await runTool(
        nvidia, arguments: nvidiaArguments, timeout: timeout, parse: NvidiaSMIParser.parse(csv:))
    }
    if let rocm = Executables.find("rocm-smi", in: directories) {
      return await runTool(
        rocm, arguments: rocmArguments, timeout: timeout, parse: ROCmSMIParser.parse(json:))
    }
    return GPUProbeResult(gpus: [], warnings: [])
  }

  private static func runTool(
    _ tool: String, arguments: [String], timeout: Duration,
    parse: @Sendable (String) -> GPUProbeResult
  ) async -> GPUProbeResult {
    let name = (tool as NSString).lastPathComponent
    let outcome = await ToolRunner.capture(tool, arguments, timeout: timeout)
    switch outcome {
    case .timedOut:
      return GPUProbeResult(
        gpus: [], warnings: ["\(name) did not answer within \(timeout) and was stopped; reporting no GPUs"])
    case .failed(let reason):
      return GPUProbeResult(gpus: [], warnings: ["\(name) could not be run: \(reason); reporting no GPUs"])
    case .finished(let status, let output, let errorOutput):
      guard status.isSuccess else {
        let detail = ROCmSMIParser.excerpt(errorOutput.isEmpty ? output : errorOutput)
        return GPUProbeResult(
          gpus: [], warnings: ["\(name) failed (\(status)): \(detail); reporting no GPUs"])
      }
      return parse(output)
    }
  }
}
