import ArgumentParser
import Foundation
import Shared

struct SubmitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "submit",
    abstract: "Queue a script (a file, or a folder holding several) as a job.",
    discussion: """
      Examples:
        pinpool submit render.json --gpus 1 --vram 60GB --follow
        pinpool submit ./my-app --entry install.json --arg prompt="a cat"
        pinpool submit transcode.json --array 1-40

      Resources come from the script's "resources" block; flags override it field by field.
      Exit status: 0 when queued (with --follow: when the job succeeded), 1 otherwise.
      """)

  @Argument(help: "A script file, or a folder to ship whole.") var bundle: String
  @Option(help: "The script to start inside a folder bundle.") var entry: String?
  @Option(help: "A name for the job (default: the file or folder name).") var name: String?
  @Option(
    name: .customLong("arg"), help: ArgumentHelp("A job argument, seen as args.KEY.", valueName: "key=value"))
  var args: [String] = []
  @Option(help: "Number of GPUs.") var gpus: Int?
  @Option(name: .customLong("gpu-vendor"), help: "nvidia, amd, apple or intel.") var gpuVendor: String?
  @Option(help: "Minimum free VRAM per GPU, e.g. 24GB.") var vram: String?
  @Option(name: .customLong("gpu-model"), help: "Part of the GPU model name, e.g. 4090 or A100.")
  var gpuModel: String?
  @Option(name: .customLong("compute-capability"), help: "Minimum CUDA compute capability, e.g. 8.0.")
  var computeCapability: String?
  @Option(help: "The worker's platform: linux, darwin or win32.") var platform: String?
  @Option(help: "Disk needed, e.g. 120GB.") var disk: String?
  @Option(help: "Host memory needed, e.g. 32GB.") var memory: String?
  @Option(
    name: .customLong("label"), help: ArgumentHelp("A label the worker must have.", valueName: "key=value"))
  var labels: [String] = []
  @Option(help: "Higher runs first.") var priority: Int = 0
  @Option(help: "Reruns after a failure.") var retries: Int = 0
  @Option(help: "Wall-clock limit, e.g. 90s, 30m, 2h.") var timeout: String?
  @Option(
    name: .customLong("artifact"),
    help: ArgumentHelp(
      "Output files to upload when the job ends, relative to its workspace (adds to the script's \"artifacts\").",
      valueName: "glob"))
  var artifacts: [String] = []
  @Option(help: "One job per index, e.g. 1-40 or 1,5,9-12.") var array: String?
  @Flag(help: "Stream the log until the job ends; exit 0 only if it succeeded.") var follow = false
  @Flag(help: "Queue the job even when `pinpool validate` finds problems.") var noValidate = false
  @OptionGroup var client: ClientOptions

  func run() throws {
    let loaded = try BundleLoader.load(bundle, entry: entry)
    if !noValidate {
      let report = BundleValidation.check(loaded)
      if !report.problems.isEmpty {
        throw CLIError(
          (report.problems + ["not submitted: fix the script, or pass --no-validate to queue it anyway"])
            .joined(separator: "\n"))
      }
    }
    var requirements: Requirements
    do {
      requirements = try Requirements(resources: loaded.script.resources)
    } catch {
      throw CLIError("\(loaded.entry): \(error)")
    }
    if let gpus {
      guard gpus >= 0 else { throw CLIError("--gpus must be 0 or more") }
      requirements.gpus = gpus
    }
    if let gpuVendor {
      do { requirements.gpuVendor = try GPUVendor(parsing: gpuVendor) } catch {
        throw CLIError("--gpu-vendor: \(error.reason)")
      }
    }
    func size(_ text: String?, _ flag: String) throws -> Int64? {
      guard let text else { return nil }
      do { return try ByteSize(parsing: text).bytes } catch { throw CLIError("--\(flag): \(error)") }
    }
    requirements.vram = try size(vram, "vram") ?? requirements.vram
    if let gpuModel { requirements.gpuModel = gpuModel }
    if let computeCapability {
      guard Requirements.parseCapability(computeCapability) != nil else {
        throw CLIError("--compute-capability '\(computeCapability)': expected a version such as 8.0")
      }
      requirements.computeCapability = computeCapability
    }
    if let platform { requirements.platform = platform }
    requirements.disk = try size(disk, "disk") ?? requirements.disk
    requirements.memory = try size(memory, "memory") ?? requirements.memory
    for label in labels {
      let (key, value) = try keyValue(label, flag: "--label")
      requirements.labels[key] = value
    }
    var argObject = JSONObject()
    for arg in args {
      let (key, value) = try keyValue(arg, flag: "--arg")
      argObject[key] = parseArgValue(value)
    }
    let timeoutSeconds = try timeout.map { text -> Double in
      do { return try DurationParser.seconds(text) } catch { throw CLIError("--timeout: \(error)") }
    }
    let indices = try array.map { text -> [Int] in
      do { return try ArraySpec.parse(text) } catch { throw CLIError("--array: \(error)") }
    }
    let request = SubmitRequest(
      requestID: newRequestID(), name: name ?? loaded.name, entry: loaded.entry, args: .object(argObject),
      requirements: requirements, priority: priority, retries: max(0, retries),
      timeoutSeconds: timeoutSeconds,
      artifacts: loaded.script.artifacts + artifacts.filter { !loaded.script.artifacts.contains($0) },
      arrayIndices: indices)
    let connection = try client.client()
    let reply = try client.request(
      connection, .submit, request, requestID: request.requestID, payload: [loaded.bundle.encoded()],
      expecting: SubmitReply.self)
    if !follow {
      if client.json {
        printJSON(reply)
      } else if reply.ids.count == 1 {
        print("submitted job \(reply.id)")
      } else {
        print("submitted \(reply.ids.count) jobs: \(reply.ids.first!)–\(reply.ids.last!)")
      }
      return
    }
    if !client.json {
      // On stderr, so stdout carries exactly the job's log.
      FileHandle.standardError.write(
        Data("submitted job \(reply.id); following its log (Ctrl-C stops following, not the job)\n".utf8))
    }
    let final = try LogFollower(client: client, connection: connection, jobID: reply.id, since: 0).run()
    if final.state != .succeeded { throw ExitCode(1) }
  }
}

func keyValue(_ text: String, flag: String) throws -> (String, String) {
  guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
    throw CLIError("\(flag) '\(text)': expected key=value")
  }
  return (String(text[..<equals]), String(text[text.index(after: equals)...]))
}

/// `--arg n=3` passes a number and `--arg x=true` a boolean, as a script author
/// writing `args.n + 1` expects; anything else is a string.
func parseArgValue(_ text: String) -> JSONValue {
  if text == "true" { return .bool(true) }
  if text == "false" { return .bool(false) }
  if text == "null" { return .null }
  if let n = Double(text), text.first.map({ $0.isNumber || $0 == "-" }) == true { return .number(n) }
  return .string(text)
}
