import { DynamoError } from "../../errors/mod.ts";
import { ModelTokenizer } from "../../llm/mod.ts";
import { findModelDir } from "../external/mod.ts";
import {
  buildMockerVocabulary,
  MockerEngine,
  type MockerEngineDeps,
  type MockerOptions,
  type MockerOptionsInput,
  resolveMockerOptions,
} from "../mocker/mod.ts";

/** What a stand-in server needs to build its simulated engine. */
export interface StandInMockerSpec {
  /** The engine's model argument: a local folder, or a model id in the Hugging Face cache. */
  readonly model: string;
  /** The engine's tokenizer flag value, when given (it wins over `model`). */
  readonly tokenizer: string | undefined;
  /** The tokenizer flag's name, for errors (`--tokenizer-path`, `--tokenizer`). */
  readonly tokenizerFlag: string;
  /** The simulation's own settings (`dynamo mocker` flags). */
  readonly mocker: MockerOptionsInput;
  /** What the engine's command line sets (block size, capacity, batch limits, ...). */
  readonly engine: MockerOptionsInput;
  /** The engine's context-length flag, when given; else config.json's, else the mocker's. */
  readonly contextLengthTokens: number | undefined;
  /** Also publish KV events in vLLM's ZMQ format (see `MockerEngine`). */
  readonly zmqKvEvents?: MockerEngineDeps["zmqKvEvents"];
  /** Called after every simulated pass (a real engine's iteration). */
  readonly onPass?: MockerEngineDeps["onPass"];
}

/** A stand-in's simulated engine, not started yet. */
export interface StandInMocker {
  readonly engine: MockerEngine;
  readonly tokenizer: ModelTokenizer;
  readonly options: MockerOptions;
  readonly contextLengthTokens: number;
  /** The folder the tokenizer came from. */
  readonly modelDir: string;
}

/**
 * Builds the mocker behind an engine stand-in, as the engine would set itself up: the model
 * folder (or the tokenizer flag's, or the Hugging Face cache's snapshot of a model id) gives
 * the tokenizer, the context length defaults to config.json's `max_position_embeddings`,
 * and the engine's flags override the simulation's settings. A bad value is
 * `invalid_request` naming it.
 */
export async function createStandInMocker(spec: StandInMockerSpec): Promise<StandInMocker> {
  const dir = await findModelDir(
    spec.tokenizer === undefined ? spec.model : undefined,
    spec.tokenizer,
    { flag: spec.tokenizerFlag },
  );
  const tokenizer = await ModelTokenizer.load(dir.dir);
  const context = spec.contextLengthTokens ?? dir.maxPositionEmbeddings ??
    resolveMockerOptions(spec.mocker).contextLengthTokens;
  let options: MockerOptions;
  try {
    options = resolveMockerOptions({
      ...spec.mocker,
      ...spec.engine,
      contextLengthTokens: context,
    });
  } catch (err) {
    // Without its param: the field name is the mocker's, not the engine flag's.
    if (err instanceof DynamoError) throw new DynamoError(err.errorClass, err.reason, err.message);
    throw err;
  }
  const engine = new MockerEngine({
    options,
    vocabulary: buildMockerVocabulary(
      (text) => tokenizer.encode(text, { addSpecialTokens: false }),
      [...tokenizer.eosTokenIds],
    ),
    ...(spec.zmqKvEvents === undefined ? {} : { zmqKvEvents: spec.zmqKvEvents }),
    ...(spec.onPass === undefined ? {} : { onPass: spec.onPass }),
  });
  return { engine, tokenizer, options, contextLengthTokens: context, modelDir: dir.dir };
}
