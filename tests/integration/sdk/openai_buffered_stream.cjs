// Reads a stream that cairn held back for validation ("stream": "buffer")
// and replayed, with the official OpenAI Node client's streaming API.
// Prints one JSON object with what it saw.
//   usage: NODE_PATH=... node openai_buffered_stream.cjs BASE_URL
const OpenAI = require("openai");

async function main() {
  const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-client-placeholder", maxRetries: 0, timeout: 10000 });
  const messages = [{ role: "user", content: "Tell me about the sea" }];
  const { data: stream, response } = await client.chat.completions
    .create(
      { model: "standin-1", messages, stream: true, stream_options: { include_usage: true } },
      { headers: { "X-Cairn-Markers": "length_tokens=20" } },
    )
    .withResponse();
  let text = "", chunks = 0, finish = null, usage = null, role = null;
  for await (const chunk of stream) {
    chunks++;
    const choice = chunk.choices[0];
    if (choice) {
      text += choice.delta?.content ?? "";
      role = role ?? choice.delta?.role ?? null;
      finish = choice.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  console.log(JSON.stringify({
    text, chunks, finish, usage, role,
    attempts: response.headers.get("x-cairn-attempts"),
    violations: response.headers.get("x-cairn-violations"),
    contentType: response.headers.get("content-type"),
  }));
}

main().catch((err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
