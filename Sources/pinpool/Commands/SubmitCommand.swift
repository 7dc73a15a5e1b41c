import ArgumentParser
import Foundation
import Shared

struct SubmitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "submit",
    abstract: "Queue a script (a file, or a folder holding several) as a job.",
    discussion: manual(
      """
      The bundle is checked as `pinpool validate` checks it, then shipped to the coordinator,
      which queues it until a worker fits. Resources come from the script's "resources"
      block; flags override it field by field. Prints the job id (--json: {"id", "ids"}).

      With --follow the job's log streams to stdout; on a terminal a status line shows the
      current step and the elapsed time, and the last line says how the job ended. Ctrl-C
      stops following, not the job.
      """,
      examples: [
        "pinpool submit render.json --gpus 1 --vram 60GB --follow",
        "pinpool submit ./my-app --entry install.json --arg prompt=\"a cat\" --arg steps=30",
        "pinpool submit transcode.json --array 1-40      (one job per index, as args.index)",
        "pinpool submit job.json --label site=studio --timeout 2h --retries 2",
      ],
      exit: ExitStatus.follow))

  @Argument(help: "A script file, or a folder to ship whole.", completion: .file()) var bundle: String
  @Option(help: "The script to start inside a folder bundle.", completion: .file(extensions: ["json", "js"]))
  var entry: String?
  @Option(help: "A name for the job (default: the file or folder name).") var name: String?
  @Option(
    name: .customLong("arg"), help: ArgumentHelp("A job argument, seen as args.KEY.", valueName: "key=value"))
  var args: [String] = []
  @Option(help: "Number of GPUs.") var gpus: Int?
  @Option(
    name: .customLong("gpu-vendor"), help: "nvidia, amd, apple or intel.", completion: Completions.gpuVendors)
  var gpuVendor: String?
  @Option(help: ArgumentHelp("Minimum free VRAM per GPU, e.g. 24GB.", valueName: "size")) var vram: String?
  @Option(name: .customLong("gpu-model"), help: "Part of the GPU model name, e.g. 4090 or A100.")
  var gpuModel: String?
  @Option(name: .customLong("compute-capability"), help: "Minimum CUDA compute capability, e.g. 8.0.")
  var computeCapability: String?
  @Option(
    help: "The worker's platform: linux, darwin or win32.", completion: .list(["linux", "darwin", "win32"]))
  var platform: String?
  @Option(help: ArgumentHelp("Disk needed, e.g. 120GB.", valueName: "size")) var disk: String?
  @Option(help: ArgumentHelp("Host memory needed, e.g. 32GB.", valueName: "size")) var memory: String?
  @Option(
    name: .customLong("label"), help: ArgumentHelp("A label the worker must have.", valueName: "key=value"))
  var labels: [String] = []
  @Option(help: "Higher runs first.") var priority: Int = 0
  @Option(help: "Reruns after a failure.") var retries: Int = 0
  @Option(help: ArgumentHelp("Wall-clock limit, e.g. 90s, 30m, 2h.", valueName: "duration")) var timeout:
    String?
  @Option(
    name: .customLong("artifact"),
    help: ArgumentHelp(
      "Output files to upload when the job ends, relative to its workspace (adds to the script's \"artifacts\").",
      valueName: "glob"))
  var artifacts: [String] = []
  @Option(help: ArgumentHelp("One job per index, e.g. 1-40 or 1,5,9-12.", valueName: "spec")) var array:
    String?
  @Flag(help: "Stream the log until the job ends; exit 0 only if it succeeded.") var follow = false
  @Flag(help: "Queue the job even when `pinpool validate` finds problems.") var noValidate = false
  @OptionGroup var client: ClientOptions

  /// What the flags say, parsed; every mistake is a usage error naming its flag.
  struct Flags {
    var overrides: (inout Requirements) -> Void = { _ in }
    var args = JSONObject()
    var timeoutSeconds: Double?
    var indices: [Int]?
  }

  func validate() throws { _ = try flags() }

  func flags() throws(ValidationError) -> Flags {
    var parsed = Flags()
    if let gpus, gpus < 0 { throw ValidationError("--gpus \(gpus): expected 0 or more") }
    var vendor: GPUVendor?
    if let gpuVendor {
      do { vendor = try GPUVendor(parsing: gpuVendor) } catch {
        throw ValidationError("--gpu-vendor '\(gpuVendor)': \(error.reason)")
      }
    }
    func size(_ text: String?, _ flag: String) throws(ValidationError) -> Int64? {
      guard let text else { return nil }
      do { return try ByteSize(parsing: text).bytes } catch { throw ValidationError("--\(flag): \(error)") }
    }
    let vramBytes = try size(vram, "vram")
    let diskBytes = try size(disk, "disk")
    let memoryBytes = try size(memory, "memory")
    if let computeCapability, Requirements.parseCapability(computeCapability) == nil {
      throw ValidationError("--compute-capability '\(computeCapability)': expected a version such as 8.0")
    }
    var labelPairs: [(String, String)] = []
    for label in labels { labelPairs.append(try keyValue(label, flag: "--label")) }
    for arg in args {
      let (key, value) = try keyValue(arg, flag: "--arg")
      parsed.args[key] = parseArgValue(value)
    }
    if retries < 0 { throw ValidationError("--retries \(retries): expected 0 or more") }
    if let timeout {
      do { parsed.timeoutSeconds = try DurationParser.seconds(timeout) } catch {
        throw ValidationError("--timeout: \(error)")
      }
    }
    if let array {
      do { parsed.indices = try ArraySpec.parse(array) } catch { throw ValidationError("--array: \(error)") }
    }
    parsed.overrides = { requirements in
      if let gpus { requirements.gpus = gpus }
      if let vendor { requirements.gpuVendor = vendor }
      if let vramBytes { requirements.vram = vramBytes }
      if let gpuModel { requirements.gpuModel = gpuModel }
      if let computeCapability { requirements.computeCapability = computeCapability }
      if let platform { requirements.platform = platform }
      if let diskBytes { requirements.disk = diskBytes }
      if let memoryBytes { requirements.memory = memoryBytes }
      for (key, value) in labelPairs { requirements.labels[key] = value }
    }
    return parsed
  }

  func run() throws {
    let flags = try self.flags()
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
    flags.overrides(&requirements)
    let request = SubmitRequest(
      requestID: newRequestID(), name: name ?? loaded.name, entry: loaded.entry, args: .object(flags.args),
      requirements: requirements, priority: priority, retries: retries,
      timeoutSeconds: flags.timeoutSeconds,
      artifacts: loaded.script.artifacts + artifacts.filter { !loaded.script.artifacts.contains($0) },
      arrayIndices: flags.indices)
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
      printError("submitted job \(reply.id); following its log (Ctrl-C stops following, not the job)")
    }
    let final = try LogFollower(client: client, connection: connection, jobID: reply.id, since: 0).run()
    if final.state != .succeeded { throw ExitCode(ExitStatus.failure.rawValue) }
  }
}

func keyValue(_ text: String, flag: String) throws(ValidationError) -> (String, String) {
  guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
    throw ValidationError("\(flag) '\(text)': expected key=value, e.g. \(flag) prompt=\"a cat\"")
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
