import ArgumentParser

@main
struct Pinpool: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pinpool",
    abstract: "Run Pinokio-style scripts on a shared pool of GPU machines.",
    discussion: """
      A coordinator queues jobs and hands each to a worker whose GPUs, VRAM and disk fit.
      Start one with `pinpool dev` to try it on this machine, then `pinpool submit SCRIPT --follow`.
      """,
    subcommands: [
      DevCommand.self, CoordinatorCommand.self, WorkerCommand.self, SubmitCommand.self, StatusCommand.self,
      JobsCommand.self, LogsCommand.self, CancelCommand.self, WorkersCommand.self, DrainCommand.self,
      UndrainCommand.self, ValidateCommand.self, KeysCommand.self, ArtifactsCommand.self,
    ])
}
