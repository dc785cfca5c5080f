// The card is plain modern JavaScript, served as is: eslint's recommended rules,
// browser globals for the card, AudioWorklet globals for the worklets.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["custom_components/realtime_assist/frontend/**/*.js"],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["custom_components/realtime_assist/frontend/realtime-assist-audio.js"],
    languageOptions: { globals: globals.audioWorklet },
  },
];
