// Drives cairn with the official OpenAI Node client, unchanged except for
// its base URL: a plain completion, a streamed one, the model list, and a
// request the gateway rejects. Prints one JSON object with what it saw.
//   usage: NODE_PATH=... node openai_client.cjs BASE_URL
const OpenAI = require("openai");

async function main() {
  const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-client-placeholder", maxRetries: 0, timeout: 10000 });
  const messages = [{ role: "user", content: "Hello from the SDK test" }];
  const out = {};

  const { data: completion, response } = await client.chat.completions
    .create({ model: "standin-1", messages })
    .withResponse();
  out.plain = { content: completion.choices[0].message.content, requestId: response.headers.get("x-request-id") };

  const stream = await client.chat.completions.create({ model: "standin-1", messages, stream: true });
  let text = "", chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  out.stream = { text, chunks };

  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);

  try {
    await client.chat.completions.create({ model: "standin-1", messages: [] });
    out.rejected = { status: 0 };
  } catch (err) {
    out.rejected = { status: err.status, code: err.code, type: err.type };
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
